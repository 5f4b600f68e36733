//! Answer quality on a sample of golden queries: each is answered by `ask`, then an LLM
//! judge rates (1-10, kiln-lm's MT-Bench-style rating format) its faithfulness to the
//! sources and its relevance to the question (RAGAS's two answer metrics, judged by rating
//! rather than by claim lists). The verifier's share of supported sentences and, where the
//! golden set has reference answers (BoolQ's yes/no), whether the answer starts with the
//! right one are reported beside the judge's figures.

use std::time::Instant;

use kiln_lm::judge::{parse_rating, single_prompt};
use kiln_lm::{user, GenParams, LanguageModel, TextCompletion};
use kiln_stats::{summarize, Summary};
use serde::Serialize;

use crate::ask::{ask, Answer, Source};
use crate::error::Result;
use crate::golden::GoldenQuery;
use crate::pipeline::{Pipeline, PipelineSpec};
use crate::verify::Verifier;

const SEED: u64 = 1234;

pub const RELEVANCE_RUBRIC: &str = "Rate how directly the response answers the question, \
whether or not it is correct: 10 answers it fully and stays on topic, 1 ignores it.";

pub fn faithfulness_prompt(sources: &[Source], answer: &str) -> String {
    let mut s = String::new();
    for src in sources {
        s.push_str(&format!("[{}] {}\n", src.n, src.text.trim()));
    }
    format!(
        "Please act as an impartial judge. Read the sources and the response below and rate \
         how faithful the response is to the sources: 10 if every claim it makes is stated \
         in the sources, 1 if its claims are missing from or contradict the sources. Give a \
         short explanation, then the rating in the form \"Rating: [[5]]\".\n\n[Sources]\n\
         {s}\n[Response]\n{answer}\n"
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct AnsweredQuery {
    pub id: String,
    #[serde(flatten)]
    pub answer: Answer,
    pub faithfulness: Option<u8>,
    pub relevance: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    pub n: usize,
    /// Judge ratings scaled to 0-1 (rating / 10), over the answers the judge rated.
    pub faithfulness: Summary,
    pub relevance: Summary,
    /// Replies of the judge with no rating in them.
    pub unrated: usize,
    /// Share of each answer's sentences the verifier found supported.
    pub supported_sentences: Summary,
    /// Answers starting with the reference yes/no (BoolQ), when references exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Summary>,
    pub seconds_per_answer: f64,
    pub answers: Vec<AnsweredQuery>,
}

/// Whether `answer` starts with the reference `yes`/`no`; None for other references.
pub fn starts_with_reference(answer: &str, reference: &str) -> Option<bool> {
    let r = reference.trim().to_lowercase();
    if r != "yes" && r != "no" {
        return None;
    }
    let first = answer
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .to_lowercase();
    Some(first == r)
}

/// Tokens the judge may write: a short explanation, then "Rating: [[n]]".
const JUDGE_MAX_TOKENS: usize = 256;

#[allow(clippy::too_many_arguments)]
pub fn evaluate_answers(
    pipeline: &Pipeline,
    llm: &dyn LanguageModel,
    judge: &dyn LanguageModel,
    verifier: &Verifier,
    queries: &[GoldenQuery],
    spec: PipelineSpec,
    k: usize,
    max_tokens: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<AnswerReport> {
    let mut answers = vec![];
    for (i, q) in queries.iter().enumerate() {
        let start = Instant::now();
        let a = ask(pipeline, llm, verifier, &q.query, spec, k, max_tokens)?;
        let seconds = start.elapsed().as_secs_f64();
        let rate = |prompt: String| {
            let reply = judge.chat_text(&user(&prompt), &GenParams::greedy(JUDGE_MAX_TOKENS))?;
            Ok::<_, crate::error::RagError>(parse_rating(&reply))
        };
        let faithfulness = rate(faithfulness_prompt(&a.sources, &a.answer))?;
        let relevance = rate(single_prompt(RELEVANCE_RUBRIC, &q.query, &a.answer, None))?;
        let correct = q
            .answer
            .as_deref()
            .and_then(|r| starts_with_reference(&a.answer, r));
        answers.push(AnsweredQuery {
            id: q.id.clone(),
            answer: a,
            faithfulness,
            relevance,
            correct,
            seconds,
        });
        progress(i + 1, queries.len());
    }
    let rated = |f: fn(&AnsweredQuery) -> Option<u8>| -> Vec<f64> {
        answers
            .iter()
            .filter_map(f)
            .map(|r| r as f64 / 10.0)
            .collect()
    };
    let faith = rated(|a| a.faithfulness);
    let rel = rated(|a| a.relevance);
    let unrated = 2 * answers.len() - faith.len() - rel.len();
    let supported: Vec<f64> = answers
        .iter()
        .map(|a| {
            let n = a.answer.sentences.len();
            if n == 0 {
                0.0
            } else {
                (n - a.answer.unsupported) as f64 / n as f64
            }
        })
        .collect();
    let correct: Vec<f64> = answers
        .iter()
        .filter_map(|a| a.correct.map(|c| c as u8 as f64))
        .collect();
    Ok(AnswerReport {
        n: answers.len(),
        faithfulness: summarize(&faith, SEED),
        relevance: summarize(&rel, SEED),
        unrated,
        supported_sentences: summarize(&supported, SEED),
        accuracy: (!correct.is_empty()).then(|| summarize(&correct, SEED)),
        seconds_per_answer: answers.iter().map(|a| a.seconds).sum::<f64>()
            / answers.len().max(1) as f64,
        answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_reference_is_read_from_the_first_word() {
        assert_eq!(starts_with_reference("Yes, it is [1].", "yes"), Some(true));
        assert_eq!(starts_with_reference("  no.", "No"), Some(true));
        assert_eq!(starts_with_reference("Nobody knows.", "no"), Some(false));
        assert_eq!(starts_with_reference("Yes", "Paris"), None);
    }
}

//! Per-question outcomes: multiple choice (`acc`, the choice with the highest summed
//! log-likelihood, and `acc_norm`, log-likelihood per character of the continuation, as
//! OLMES' `acc_per_char` and lm-evaluation-harness's `acc_norm` compute it) and generated
//! answers (exact match, F1, BLEU, ROUGE-L). Their means and intervals are kiln-stats'.

use serde::{Deserialize, Serialize};

use crate::scoring::answer::{exact_match, f1, last_number, same_number};
use crate::scoring::overlap::{bleu, rouge_l};
use crate::tasks::gen_item::{GenItem, Scoring};
use crate::tasks::mc_item::McItem;
use kiln_lm::LoglikScore;

/// One question's outcome (a line of the per-sample output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub gold: usize,
    pub logprobs: Vec<f64>,
    pub tokens: Vec<usize>,
    pub chars: Vec<usize>,
    pub is_greedy: Vec<bool>,
    pub pred: usize,
    pub pred_norm: usize,
    pub acc: f64,
    pub acc_norm: f64,
}

/// The first index of the largest value (numpy's argmax, so ties break as the harness's).
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

pub fn score_item(item: &McItem, scores: &[LoglikScore]) -> ItemResult {
    let chars: Vec<usize> = item
        .choices
        .iter()
        .map(|c| c.continuation.chars().count())
        .collect();
    let pred = argmax(scores.iter().map(|s| s.logprob));
    let pred_norm = argmax(
        scores
            .iter()
            .zip(&chars)
            .map(|(s, &c)| s.logprob / c.max(1) as f64),
    );
    ItemResult {
        doc_id: item.doc_id,
        native_id: item.native_id.clone(),
        gold: item.gold,
        logprobs: scores.iter().map(|s| s.logprob).collect(),
        tokens: scores.iter().map(|s| s.tokens).collect(),
        chars,
        is_greedy: scores.iter().map(|s| s.is_greedy).collect(),
        pred,
        pred_norm,
        acc: f64::from(u8::from(pred == item.gold)),
        acc_norm: f64::from(u8::from(pred_norm == item.gold)),
    }
}

/// One generated answer's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub answer: String,
    pub completion: String,
    /// The answer extracted from the completion (its last number), for number answers.
    pub extracted: Option<String>,
    pub exact_match: f64,
    /// Text answers: SQuAD F1, sentence BLEU and ROUGE-L, best over the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
}

impl GenResult {
    /// Its metrics, by name (exact_match, and f1/bleu/rouge_l for text answers).
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![("exact_match", self.exact_match)];
        for (name, v) in [
            ("f1", self.f1),
            ("bleu", self.bleu),
            ("rouge_l", self.rouge_l),
        ] {
            if let Some(v) = v {
                m.push((name, v));
            }
        }
        m
    }
}

/// Scores a completion of a generation task: by its last number (GSM8K) or as text.
pub fn score_generation(item: &GenItem, completion: &str) -> GenResult {
    let mut r = GenResult {
        doc_id: item.doc_id,
        native_id: item.native_id.clone(),
        answer: item.answer.clone(),
        completion: completion.to_string(),
        extracted: None,
        exact_match: 0.0,
        f1: None,
        bleu: None,
        rouge_l: None,
    };
    match item.scoring {
        Scoring::LastNumber => {
            r.extracted = last_number(completion);
            let exact = r
                .extracted
                .as_deref()
                .is_some_and(|x| same_number(x, &item.answer));
            r.exact_match = f64::from(u8::from(exact));
        }
        Scoring::Text => {
            let answers: Vec<&str> = std::iter::once(item.answer.as_str())
                .chain(item.aliases.iter().map(String::as_str))
                .collect();
            let best = |f: &dyn Fn(&str) -> f64| answers.iter().map(|a| f(a)).fold(0.0, f64::max);
            r.exact_match = best(&|a| f64::from(u8::from(exact_match(completion, a))));
            r.f1 = Some(best(&|a| f1(completion, a)));
            r.bleu = Some(bleu(completion, &answers));
            r.rouge_l = Some(rouge_l(completion, &answers));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_lm::LoglikRequest;

    fn item(continuations: &[&str], gold: usize) -> McItem {
        McItem {
            doc_id: 0,
            native_id: serde_json::Value::Null,
            choices: continuations
                .iter()
                .map(|c| LoglikRequest {
                    context: "Q:".into(),
                    continuation: c.to_string(),
                })
                .collect(),
            gold,
        }
    }

    fn scores(lps: &[f64]) -> Vec<LoglikScore> {
        lps.iter()
            .map(|&logprob| LoglikScore {
                logprob,
                is_greedy: false,
                tokens: 1,
            })
            .collect()
    }

    #[test]
    fn acc_takes_the_sum_and_acc_norm_the_per_character_likelihood() {
        // " a" (2 chars) at -2 vs " abcdefgh" (9 chars) at -3: the short one is likelier in
        // sum, the long one per character (-1 vs -0.33).
        let it = item(&[" a", " abcdefgh"], 1);
        let r = score_item(&it, &scores(&[-2.0, -3.0]));
        assert_eq!((r.pred, r.pred_norm, r.acc, r.acc_norm), (0, 1, 0.0, 1.0));
        assert_eq!(r.chars, vec![2, 9]);
    }

    #[test]
    fn ties_go_to_the_first_choice() {
        let r = score_item(&item(&[" x", " y", " z"], 2), &scores(&[-1.0, -1.0, -1.0]));
        assert_eq!(r.pred, 0);
    }
}

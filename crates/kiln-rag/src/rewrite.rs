//! Query rewriting by a language model before retrieval:
//! - HyDE (Gao et al., 2022): the model writes a hypothetical passage that answers the
//!   question, and dense search looks for real passages near it (its embedding averaged
//!   with the question's, as the paper averages generated documents with the query);
//! - decomposition: the model splits the question into simpler sub-questions, each is
//!   retrieved on its own, and the lists are merged with the question's own by reciprocal
//!   rank fusion.

use kiln_lm::{user, GenParams, LanguageModel, TextCompletion};

use crate::error::Result;

/// Tokens of a hypothetical passage.
pub const HYDE_MAX_TOKENS: usize = 96;
/// Sub-questions kept.
pub const MAX_SUB_QUESTIONS: usize = 3;

pub fn hyde_prompt(question: &str) -> String {
    format!(
        "Write a short encyclopedia paragraph that answers this question.\nQuestion: {}",
        question.trim()
    )
}

/// The hypothetical passage HyDE embeds.
pub fn hypothetical_passage(llm: &dyn LanguageModel, question: &str) -> Result<String> {
    Ok(llm
        .chat_text(
            &user(&hyde_prompt(question)),
            &GenParams::greedy(HYDE_MAX_TOKENS),
        )?
        .trim()
        .to_string())
}

/// The mean of two unit vectors, normalised again.
pub fn mean_direction(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + y).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub fn decomposition_prompt(question: &str) -> String {
    format!(
        "Split this question into at most {MAX_SUB_QUESTIONS} simpler search queries that \
         together answer it. Write one query per line and nothing else.\nQuestion: {}",
        question.trim()
    )
}

/// The model's sub-questions of `question`.
pub fn sub_questions(llm: &dyn LanguageModel, question: &str) -> Result<Vec<String>> {
    let reply = llm.chat_text(
        &user(&decomposition_prompt(question)),
        &GenParams::greedy(96),
    )?;
    Ok(parse_sub_questions(&reply, question))
}

/// One query per line, list markers ("1.", "2)", "-", "*", "Query 1:") dropped; lines
/// that repeat the question or each other, or are too short to search, are left out.
pub fn parse_sub_questions(reply: &str, question: &str) -> Vec<String> {
    let norm = |s: &str| {
        s.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || c.is_whitespace())
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut seen = vec![norm(question)];
    let mut out = vec![];
    for line in reply.lines() {
        let q = strip_marker(line.trim());
        let n = norm(q);
        if n.split_whitespace().count() < 2 || seen.contains(&n) {
            continue;
        }
        seen.push(n);
        out.push(q.to_string());
        if out.len() == MAX_SUB_QUESTIONS {
            break;
        }
    }
    out
}

fn strip_marker(line: &str) -> &str {
    let mut s = line.trim_start_matches(['-', '*', '•', ' ']);
    // "Query 2:", "Sub-question 1:", "Q3:"
    if let Some((head, rest)) = s.split_once(':') {
        let h = head.to_lowercase();
        if head.len() <= 16
            && h.chars().any(|c| c.is_ascii_digit())
            && (h.contains("query") || h.contains("question") || h.starts_with('q'))
        {
            s = rest;
        }
    }
    // "1." or "2)"
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && matches!(s[digits..].chars().next(), Some('.' | ')')) {
        s = &s[digits + 1..];
    }
    s.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_questions_drop_markers_repeats_and_fragments() {
        let reply = "1. What is the capital of France?\n2) what is the capital of france\n\
                     - Who designed the Eiffel Tower?\nQuery 3: When was it built?\nok\n\
                     * Is Paris in Europe?\n5. One more query here";
        let got = parse_sub_questions(reply, "Is the Eiffel Tower in the capital of France?");
        assert_eq!(
            got,
            [
                "What is the capital of France?",
                "Who designed the Eiffel Tower?",
                "When was it built?"
            ]
        );
        assert!(parse_sub_questions("is the sky blue", "Is the sky blue?").is_empty());
    }

    #[test]
    fn mean_direction_is_unit_and_between() {
        let v = mean_direction(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((v[0] - v[1]).abs() < 1e-6);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

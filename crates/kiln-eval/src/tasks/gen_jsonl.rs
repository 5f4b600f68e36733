//! kiln's generation task format, one question per line:
//!
//! ```json
//! {"id": "q1", "prompt": "Q: Who wrote Hamlet?\nA:", "answers": ["Shakespeare", "William Shakespeare"]}
//! ```
//!
//! (`"answer": "..."` for a single one; optional `"stop": [...]`, default a blank line, and
//! `"max_tokens"`, default 128). The greedy completion is scored against the answers by
//! exact match and F1 after SQuAD's normalisation, BLEU and ROUGE-L, each the best over
//! the answers.

use std::path::Path;

use serde::Deserialize;

use crate::error::Result;
use crate::tasks::gen_item::{GenItem, Scoring};
use crate::tasks::olmes::{json_lines, line_error, open_text};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenLine {
    #[serde(default)]
    id: serde_json::Value,
    prompt: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default)]
    stop: Option<Vec<String>>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

const DEFAULT_MAX_TOKENS: usize = 128;

/// The first line of a JSONL task file, parsed (null when unreadable), to tell the kinds
/// of file apart: "query" (multiple choice), "prompt" (generation), "text" (perplexity).
pub fn first_line(path: &Path) -> Result<serde_json::Value> {
    use std::io::BufRead;
    for line in open_text(path)?.lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        return Ok(serde_json::from_str(&line).unwrap_or_default());
    }
    Ok(serde_json::Value::Null)
}

/// Reads a generation task file (errors name the file and line).
pub fn read_gen_lines(path: &Path) -> Result<Vec<GenItem>> {
    let parse = line_error(path);
    let expected = "a question {\"id\", \"prompt\", \"answers\": [...]}";
    let mut out = vec![];
    for (i, g) in json_lines::<GenLine>(path, expected)? {
        let mut answers = g.answers;
        if let Some(a) = g.answer {
            answers.insert(0, a);
        }
        if answers.is_empty() {
            return Err(parse(i + 1, "no \"answer\" or \"answers\"".into()));
        }
        let answer = answers.remove(0);
        out.push(GenItem {
            doc_id: out.len(),
            native_id: g.id,
            prompt: g.prompt,
            answer,
            reference: None,
            stop: g.stop.unwrap_or_else(|| vec!["\n\n".into()]),
            max_tokens: g.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            aliases: answers,
            scoring: Scoring::Text,
        });
    }
    if out.is_empty() {
        return Err(parse(0, "no questions".into()));
    }
    Ok(out)
}

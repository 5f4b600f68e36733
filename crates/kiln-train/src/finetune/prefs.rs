//! Preference pairs for DPO, one per JSONL line in TRL's shape:
//! `{"prompt": "...", "chosen": "...", "rejected": "..."}`, where `prompt` may also be a
//! list of chat messages ending with the user's turn. Each side becomes a chat example
//! (prompt, then the assistant's answer) tokenized with the model's template, so only the
//! answer's tokens (and its end-of-turn) are scored.

use std::path::Path;

use kiln_model::ChatMessage;
use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::sft_data::{
    prepare_examples, DataReport, SftExample, SftRecord, SftTokenizer, TokenizedExample,
};

/// One pair's tokens: the same prompt with either answer.
#[derive(Debug, Clone)]
pub struct TokenizedPair {
    pub chosen: TokenizedExample,
    pub rejected: TokenizedExample,
    pub line: usize,
}

fn line_error(path: &Path, line: usize, msg: impl Into<String>) -> TrainError {
    TrainError::DataLine {
        path: path.into(),
        line,
        msg: msg.into(),
    }
}

/// The prompt as chat messages: a string is one user turn.
pub(crate) fn prompt_messages(v: &Value, path: &Path, line: usize) -> Result<Vec<ChatMessage>> {
    match v {
        Value::String(s) => Ok(vec![ChatMessage::new("user", s.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|m| {
                let field = |k: &str| m.get(k).and_then(Value::as_str);
                match (field("role"), field("content")) {
                    (Some(r), Some(c)) => Ok(ChatMessage::new(r, c)),
                    _ => Err(line_error(
                        path,
                        line,
                        "every prompt message needs string \"role\" and \"content\"",
                    )),
                }
            })
            .collect(),
        _ => Err(line_error(
            path,
            line,
            "\"prompt\" must be a string or a list of chat messages",
        )),
    }
}

/// Reads `{"prompt", "chosen", "rejected"}` lines as pairs of chat records.
pub fn read_pairs(path: &Path) -> Result<Vec<(SftRecord, SftRecord)>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, "read", e))?;
    let mut out = vec![];
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| line_error(path, line, format!("not JSON: {e}")))?;
        let answer = |k: &str| {
            v.get(k).and_then(Value::as_str).ok_or_else(|| {
                line_error(
                    path,
                    line,
                    format!(
                        "expected an object with \"prompt\", \"chosen\" and \"rejected\"; \
                         \"{k}\" is missing or not a string"
                    ),
                )
            })
        };
        let (chosen, rejected) = (answer("chosen")?, answer("rejected")?);
        let prompt = v.get("prompt").ok_or_else(|| {
            line_error(
                path,
                line,
                "expected an object with \"prompt\", \"chosen\" and \"rejected\"; \"prompt\" is missing",
            )
        })?;
        let messages = prompt_messages(prompt, path, line)?;
        let side = |answer: &str| {
            let mut m = messages.clone();
            m.push(ChatMessage::new("assistant", answer));
            SftRecord {
                line,
                example: SftExample::Chat(m),
            }
        };
        out.push((side(chosen), side(rejected)));
    }
    if out.is_empty() {
        return Err(TrainError::EmptyDataset { path: path.into() });
    }
    Ok(out)
}

/// Tokenizes pairs, cutting each side to `max_len`; a pair one of whose sides has nothing
/// left to score is dropped, and the report counts pairs (and the lines dropped).
pub fn prepare_pairs(
    pairs: &[(SftRecord, SftRecord)],
    tok: &SftTokenizer<'_>,
    max_len: usize,
    path: &Path,
) -> Result<(Vec<TokenizedPair>, DataReport)> {
    let chosen: Vec<SftRecord> = pairs.iter().map(|p| p.0.clone()).collect();
    let rejected: Vec<SftRecord> = pairs.iter().map(|p| p.1.clone()).collect();
    let (c, rc) = prepare_examples(&chosen, tok, max_len, path)?;
    let (r, rr) = prepare_examples(&rejected, tok, max_len, path)?;
    let by_line =
        |v: Vec<TokenizedExample>| -> std::collections::BTreeMap<usize, TokenizedExample> {
            v.into_iter().map(|e| (e.line, e)).collect()
        };
    let (mut c, mut r) = (by_line(c), by_line(r));
    let mut report = DataReport::default();
    let mut out = vec![];
    for (rec, _) in pairs {
        match (c.remove(&rec.line), r.remove(&rec.line)) {
            (Some(chosen), Some(rejected)) => {
                report.examples += 1;
                for e in [&chosen, &rejected] {
                    report.total_tokens += e.len();
                    report.trained_tokens += e.trained_tokens();
                    report.truncated += usize::from(e.len() >= max_len);
                }
                out.push(TokenizedPair {
                    chosen,
                    rejected,
                    line: rec.line,
                });
            }
            _ => {
                report.dropped_no_trainable_tokens += 1;
                report.dropped_lines.push(rec.line);
            }
        }
    }
    report.longest = rc.longest.max(rr.longest);
    if out.is_empty() {
        return Err(TrainError::InvalidArgument(format!(
            "{}: no pair has tokens to score on both sides",
            path.display()
        )));
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prefs.jsonl");
        let good = r#"{"prompt": "2+2?", "chosen": "4", "rejected": "5"}"#;
        std::fs::write(
            &p,
            format!("{good}\n{{\"prompt\": \"x\", \"chosen\": \"y\"}}\n"),
        )
        .unwrap();
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("rejected"), "{e}");
        std::fs::write(&p, format!("{good}\n{{\"prompt\": [{{\"role\": \"user\"}}], \"chosen\": \"a\", \"rejected\": \"b\"}}\n")).unwrap();
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("content"), "{e}");
        std::fs::write(&p, format!("{good}\n")).unwrap();
        let pairs = read_pairs(&p).unwrap();
        assert_eq!(pairs.len(), 1);
        let SftExample::Chat(m) = &pairs[0].1.example else {
            panic!("a chat record")
        };
        assert_eq!(m.last().unwrap().content, "5");
    }
}

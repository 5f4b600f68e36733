//! Preference pairs for DPO, one per JSONL line in TRL's shape:
//! `{"prompt": "...", "chosen": "...", "rejected": "..."}`, where `prompt` may also be a
//! list of chat messages ending with the user's turn. Each side becomes a chat example
//! (prompt, then the assistant's answer) tokenized with the model's template, so only the
//! answer's tokens (and its end-of-turn) are scored. A pair with `"partial": true` holds
//! the first steps of two answers (Step-DPO): their end-of-turn is not scored, so the pair
//! says which step comes next, not that the answer ends there.

use std::path::Path;

use kiln_model::chat::prompt_messages;
use kiln_model::ChatMessage;
use serde_json::Value;

use crate::data::sft::{
    prepare_examples, DataReport, SftExample, SftRecord, SftTokenizer, TokenizedExample,
};
use crate::error::{Result, TrainError};

/// One JSONL line: the prompt with either answer, as chat records.
#[derive(Debug, Clone)]
pub struct PairRecord {
    pub chosen: SftRecord,
    pub rejected: SftRecord,
    /// The answers stop mid-way: their turns are left open.
    pub partial: bool,
}

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

/// Reads `{"prompt", "chosen", "rejected"}` lines (optionally `"partial": true`) as pairs
/// of chat records.
pub fn read_pairs(path: &Path) -> Result<Vec<PairRecord>> {
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
        let messages = prompt_messages(prompt).map_err(|msg| line_error(path, line, msg))?;
        let partial = match v.get("partial") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(line_error(path, line, "\"partial\" must be true or false")),
        };
        let side = |answer: &str| {
            let mut m = messages.clone();
            m.push(ChatMessage::new("assistant", answer));
            SftRecord {
                line,
                example: SftExample::Chat(m),
            }
        };
        out.push(PairRecord {
            chosen: side(chosen),
            rejected: side(rejected),
            partial,
        });
    }
    if out.is_empty() {
        return Err(TrainError::EmptyDataset { path: path.into() });
    }
    Ok(out)
}

/// Drops the end-of-turn token of an example's last answer and what follows it (a template
/// may score the newline after it too). False when its last scored tokens hold none: an
/// answer cut short by `max_len`, or a template whose turns end with a token the tokenizer
/// does not list as an end token.
fn leave_turn_open(e: &mut TokenizedExample, end_of_turn: &[u32]) -> bool {
    let Some(last) = e.loss_mask.iter().rposition(|&m| m) else {
        return false;
    };
    let run_start = e.loss_mask[..last]
        .iter()
        .rposition(|&m| !m)
        .map_or(0, |i| i + 1);
    let Some(end) = (run_start..=last)
        .rev()
        .find(|&i| end_of_turn.contains(&e.input_ids[i]))
    else {
        return false;
    };
    e.input_ids.truncate(end);
    e.loss_mask.truncate(end);
    true
}

/// Tokenizes pairs, cutting each side to `max_len`; a pair one of whose sides has nothing
/// left to score is dropped, and the report counts pairs (and the lines dropped).
pub fn prepare_pairs(
    pairs: &[PairRecord],
    tok: &SftTokenizer<'_>,
    max_len: usize,
    path: &Path,
) -> Result<(Vec<TokenizedPair>, DataReport)> {
    let chosen: Vec<SftRecord> = pairs.iter().map(|p| p.chosen.clone()).collect();
    let rejected: Vec<SftRecord> = pairs.iter().map(|p| p.rejected.clone()).collect();
    let (c, rc) = prepare_examples(&chosen, tok, max_len, path)?;
    let (r, rr) = prepare_examples(&rejected, tok, max_len, path)?;
    let by_line =
        |v: Vec<TokenizedExample>| -> std::collections::BTreeMap<usize, TokenizedExample> {
            v.into_iter().map(|e| (e.line, e)).collect()
        };
    let (mut c, mut r) = (by_line(c), by_line(r));
    let mut report = DataReport::default();
    let mut out = vec![];
    for pair in pairs {
        let line = pair.chosen.line;
        let (mut chosen, mut rejected) = (c.remove(&line), r.remove(&line));
        if pair.partial {
            for e in [&mut chosen, &mut rejected].into_iter().flatten() {
                if !leave_turn_open(e, tok.end_of_turn_ids()) && e.len() < max_len {
                    return Err(line_error(
                        path,
                        line,
                        "a \"partial\" pair's answer ends with no end-of-turn token the \
                         tokenizer knows, so its turn cannot be left open",
                    ));
                }
            }
        }
        match (chosen, rejected) {
            (Some(chosen), Some(rejected))
                if chosen.trained_tokens() > 0 && rejected.trained_tokens() > 0 =>
            {
                report.examples += 1;
                for e in [&chosen, &rejected] {
                    report.total_tokens += e.len();
                    report.trained_tokens += e.trained_tokens();
                    report.truncated += usize::from(e.len() >= max_len);
                }
                out.push(TokenizedPair {
                    chosen,
                    rejected,
                    line,
                });
            }
            _ => {
                report.dropped_no_trainable_tokens += 1;
                report.dropped_lines.push(line);
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
        assert!(!pairs[0].partial);
        let SftExample::Chat(m) = &pairs[0].rejected.example else {
            panic!("a chat record")
        };
        assert_eq!(m.last().unwrap().content, "5");
    }

    #[test]
    fn partial_pairs_leave_the_turn_open() {
        let dir = tempfile::tempdir().unwrap();
        kiln_model::tiny::write_tiny_llama(dir.path(), &Default::default()).unwrap();
        let model = kiln_model::load(dir.path(), &candle_core::Device::Cpu).unwrap();
        let chat = model.chat_prompt().unwrap();
        let tok = SftTokenizer::new(
            &model.tokenizer,
            &chat,
            crate::data::sft::TrainOn::Assistant,
        );
        let p = dir.path().join("prefs.jsonl");
        let pair = r#""prompt": "2+3+4?", "chosen": "2 + 3 = 5.", "rejected": "2 + 3 = 6.""#;
        std::fs::write(&p, format!("{{{pair}}}\n{{{pair}, \"partial\": true}}\n")).unwrap();
        let records = read_pairs(&p).unwrap();
        assert_eq!(
            records.iter().map(|r| r.partial).collect::<Vec<_>>(),
            [false, true]
        );
        let (pairs, report) = prepare_pairs(&records, &tok, 512, &p).unwrap();
        assert_eq!(report.examples, 2);
        let im_end = model.tokenizer.token_to_id("<|im_end|>").unwrap();
        let last_scored = |e: &TokenizedExample| {
            let i = e.loss_mask.iter().rposition(|&m| m).unwrap();
            (e.input_ids[i], i + 1 == e.len())
        };
        let ends_turn =
            |e: &TokenizedExample| e.input_ids.iter().rev().take(2).any(|&t| t == im_end);
        for (whole, partial) in [
            (&pairs[0].chosen, &pairs[1].chosen),
            (&pairs[0].rejected, &pairs[1].rejected),
        ] {
            assert!(ends_turn(whole), "a whole answer ends its turn");
            let (id, at_end) = last_scored(partial);
            assert!(
                id != im_end && at_end,
                "a partial answer ends on its own text"
            );
            assert_eq!(partial.input_ids[..], whole.input_ids[..partial.len()]);
            assert!(partial.trained_tokens() < whole.trained_tokens());
            let text = model
                .tokenizer
                .decode(&partial.input_ids[partial.len() - 4..])
                .unwrap();
            assert!(text.ends_with("= 5.") || text.ends_with("= 6."), "{text:?}");
        }
        std::fs::write(&p, format!("{{{pair}, \"partial\": 1}}\n")).unwrap();
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("partial"), "{e}");
    }
}

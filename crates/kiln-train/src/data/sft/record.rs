//! One fine-tuning example per JSONL line, in any of the three shapes the field uses:
//! chat (`{"messages": [{"role", "content"}, ...]}`), `{"prompt", "completion"}` and
//! `{"text"}`. The shape is detected per line, so a file may mix them. Every error names
//! the file and the 1-based line.

use std::path::Path;

use kiln_model::ChatMessage;
use serde_json::Value;

use crate::error::{Result, TrainError};

/// Roles a chat example may use; templates disagree on anything else (tool, function, ...).
pub const CHAT_ROLES: [&str; 3] = ["system", "user", "assistant"];

#[derive(Debug, Clone, PartialEq)]
pub enum SftExample {
    Chat(Vec<ChatMessage>),
    PromptCompletion { prompt: String, completion: String },
    Text(String),
}

/// An example and the line it came from, so later errors (a template that refuses it) can
/// point back at the file.
#[derive(Debug, Clone, PartialEq)]
pub struct SftRecord {
    pub line: usize,
    pub example: SftExample,
}

/// Reads every example of a JSONL file. Blank lines are skipped; anything else that is not
/// an example is an error at its line. A file with no examples is an error too.
pub fn read_sft_jsonl(path: &Path) -> Result<Vec<SftRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, "read", e))?;
    let records = parse_sft_jsonl(&text, path)?;
    if records.is_empty() {
        return Err(TrainError::EmptyDataset { path: path.into() });
    }
    Ok(records)
}

/// [`read_sft_jsonl`] on text already in memory; `path` is only for messages.
pub fn parse_sft_jsonl(text: &str, path: &Path) -> Result<Vec<SftRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let example = parse_line(line).map_err(|msg| TrainError::DataLine {
            path: path.into(),
            line: i + 1,
            msg,
        })?;
        out.push(SftRecord {
            line: i + 1,
            example,
        });
    }
    Ok(out)
}

const EXPECTED: &str = r#"expected an object with "messages", "prompt"+"completion" or "text""#;

fn parse_line(line: &str) -> std::result::Result<SftExample, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e})"))?;
    let Value::Object(obj) = value else {
        return Err(format!("{EXPECTED}, found {}", kind_of(&value)));
    };
    if let Some(messages) = obj.get("messages") {
        return parse_messages(messages).map(SftExample::Chat);
    }
    match (obj.get("prompt"), obj.get("completion")) {
        (Some(p), Some(c)) => {
            return Ok(SftExample::PromptCompletion {
                prompt: string_field(p, "prompt")?,
                completion: string_field(c, "completion")?,
            })
        }
        (Some(_), None) => return Err(r#"has "prompt" but no "completion""#.into()),
        (None, Some(_)) => return Err(r#"has "completion" but no "prompt""#.into()),
        (None, None) => {}
    }
    if let Some(t) = obj.get("text") {
        return string_field(t, "text").map(SftExample::Text);
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    Err(format!("{EXPECTED}; found keys {keys:?}"))
}

fn parse_messages(v: &Value) -> std::result::Result<Vec<ChatMessage>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            r#""messages" must be a list of {{"role", "content"}} objects, found {}"#,
            kind_of(v)
        ));
    };
    if items.is_empty() {
        return Err(r#""messages" is empty"#.into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // 1-based like the line number, so "message 1" is the first one.
            let n = i + 1;
            let Value::Object(m) = m else {
                return Err(format!("message {n} is {}, expected an object", kind_of(m)));
            };
            let role = match m.get("role") {
                Some(Value::String(r)) => r,
                Some(other) => {
                    return Err(format!(
                        "message {n}: \"role\" is {}, expected a string",
                        kind_of(other)
                    ))
                }
                None => return Err(format!("message {n} has no \"role\"")),
            };
            if !CHAT_ROLES.contains(&role.as_str()) {
                return Err(format!(
                    "message {n}: unknown role {role:?} (expected one of {})",
                    CHAT_ROLES.join(", ")
                ));
            }
            let content = match m.get("content") {
                Some(Value::String(c)) => c,
                Some(other) => {
                    return Err(format!(
                        "message {n} ({role}): \"content\" is {}, expected a string",
                        kind_of(other)
                    ))
                }
                None => return Err(format!("message {n} ({role}) has no \"content\"")),
            };
            Ok(ChatMessage::new(role.as_str(), content.as_str()))
        })
        .collect()
}

fn string_field(v: &Value, key: &str) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "\"{key}\" is {}, expected a string",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<SftRecord>> {
        parse_sft_jsonl(text, Path::new("train.jsonl"))
    }

    #[test]
    fn each_shape_is_detected_per_line() {
        let text = concat!(
            r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."}]}"#,
            "\n\n",
            r#"{"prompt":"2+2=","completion":"4","id":7}"#,
            "\n",
            r#"{"text":"plain text"}"#,
            "\n"
        );
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].line, 1);
        match &r[0].example {
            SftExample::Chat(m) => {
                assert_eq!(m.len(), 3);
                assert_eq!(m[2], ChatMessage::new("assistant", "Hello."));
            }
            other => panic!("{other:?}"),
        }
        // The blank line still counts, so the next example is line 3.
        assert_eq!(r[1].line, 3);
        assert_eq!(
            r[1].example,
            SftExample::PromptCompletion {
                prompt: "2+2=".into(),
                completion: "4".into()
            }
        );
        assert_eq!(r[2].example, SftExample::Text("plain text".into()));
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn malformed_lines_name_file_line_and_what_was_expected() {
        let good = r#"{"text":"ok"}"#;
        let cases = [
            (r#"{"input":"x"}"#, r#"train.jsonl:3: expected an object with "messages", "prompt"+"completion" or "text"; found keys ["input"]"#),
            ("[1,2]", "train.jsonl:3: expected an object with \"messages\", \"prompt\"+\"completion\" or \"text\", found a list"),
            ("{not json", "train.jsonl:3: invalid JSON"),
            (r#"{"prompt":"x"}"#, r#"train.jsonl:3: has "prompt" but no "completion""#),
            (r#"{"text":5}"#, r#"train.jsonl:3: "text" is a number, expected a string"#),
            (r#"{"messages":[{"role":"user","content":"a"},{"content":"b"}]}"#, r#"train.jsonl:3: message 2 has no "role""#),
            (r#"{"messages":[{"role":"user"}]}"#, r#"train.jsonl:3: message 1 (user) has no "content""#),
            (r#"{"messages":[{"role":"robot","content":"x"}]}"#, r#"train.jsonl:3: message 1: unknown role "robot" (expected one of system, user, assistant)"#),
            (r#"{"messages":[]}"#, r#"train.jsonl:3: "messages" is empty"#),
            (r#"{"messages":"hi"}"#, r#"train.jsonl:3: "messages" must be a list"#),
        ];
        for (bad, want) in cases {
            let msg = error_of(&format!("{good}\n{good}\n{bad}\n{good}\n"));
            assert!(
                msg.starts_with(want),
                "{bad}: got {msg:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn empty_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.jsonl");
        std::fs::write(&p, "\n  \n").unwrap();
        let msg = read_sft_jsonl(&p).unwrap_err().to_string();
        assert!(msg.contains("empty.jsonl: no examples"), "{msg}");
        let msg = read_sft_jsonl(&dir.path().join("missing.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing.jsonl: no such file"), "{msg}");
    }
}

//! Task items, one per JSONL line: `{"prompt": "..." | [messages], "answer": "..."}`; the
//! answer is optional for scorers that need none (a format check, a judge).

use std::path::Path;

use kiln_model::chat::prompt_messages;
use kiln_model::ChatMessage;
use serde_json::Value;

use crate::error::{io_err, EvalError, Result};

#[derive(Debug, Clone)]
pub struct TaskItem {
    /// 1-based line in the file.
    pub line: usize,
    /// The prompt as written (kept for output files).
    pub prompt: Value,
    pub messages: Vec<ChatMessage>,
    pub answer: Option<String>,
}

pub fn read_task_items(path: &Path) -> Result<Vec<TaskItem>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = vec![];
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |message: String| EvalError::Parse {
            path: path.into(),
            line,
            message,
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| err(format!("not JSON: {e}")))?;
        let prompt = v
            .get("prompt")
            .ok_or_else(|| err("expected an object with \"prompt\" (and \"answer\")".into()))?;
        let answer = match v.get("answer") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(err("\"answer\" must be a string or a number".into())),
        };
        out.push(TaskItem {
            line,
            messages: prompt_messages(prompt).map_err(err)?,
            prompt: prompt.clone(),
            answer,
        });
    }
    if out.is_empty() {
        return Err(EvalError::EmptyFile { path: path.into() });
    }
    Ok(out)
}

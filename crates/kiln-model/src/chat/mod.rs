//! Conversations as prompts: the messages, the model's Jinja template, and [`ChatPrompt`],
//! the one builder that turns messages into token ids for chat, serving, evaluation, the
//! judge, RAG answers and fine-tuning data alike.

mod prompt;
mod template;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use prompt::{ChatFormat, ChatPrompt};
pub use template::{ChatTemplate, CHATML};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A prompt as JSONL files write it: a string (one user turn) or a list of
/// `{"role", "content"}` messages. The error says what was wrong; callers add the line.
pub fn prompt_messages(v: &Value) -> Result<Vec<ChatMessage>, String> {
    match v {
        Value::String(s) => Ok(vec![ChatMessage::new("user", s.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|m| {
                let field = |k: &str| m.get(k).and_then(Value::as_str);
                match (field("role"), field("content")) {
                    (Some(r), Some(c)) => Ok(ChatMessage::new(r, c)),
                    _ => Err("every prompt message needs string \"role\" and \"content\"".into()),
                }
            })
            .collect(),
        _ => Err("\"prompt\" must be a string or a list of chat messages".into()),
    }
}

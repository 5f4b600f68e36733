//! Conversations as prompts: the messages, the model's Jinja template, and [`ChatPrompt`],
//! the one builder that turns messages into token ids for chat, serving, evaluation, the
//! judge, RAG answers and fine-tuning data alike.

mod prompt;
mod template;

use serde::{Deserialize, Serialize};

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

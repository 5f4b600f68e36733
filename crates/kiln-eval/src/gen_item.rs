//! A question answered by generation: a prompt, the text that ends an answer (stop
//! sequences), and the gold answer its extracted answer is compared with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenItem {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub prompt: String,
    /// The gold answer (GSM8K: the final number).
    pub answer: String,
    /// A known-correct full response (GSM8K's worked solution), when the task has one.
    pub reference: Option<String>,
    pub stop: Vec<String>,
    pub max_tokens: usize,
}

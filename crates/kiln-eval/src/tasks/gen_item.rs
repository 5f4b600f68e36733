//! A question answered by generation: a prompt, the text that ends an answer (stop
//! sequences), and the gold answer its extracted answer (or its whole text) is compared
//! with.

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
    /// Other acceptable answers (text scoring takes the best match).
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub scoring: Scoring,
}

/// How a completion is compared with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The completion's last number equals the answer (GSM8K).
    #[default]
    LastNumber,
    /// Exact match and F1 after SQuAD's normalisation, BLEU and ROUGE-L (open answers).
    Text,
}

//! A multiple-choice question scored by log-likelihood: each choice is a context and a
//! continuation, and the choice whose continuation the model finds most likely is its answer.

pub use kiln_lm::LoglikRequest;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McItem {
    /// Position in the task (0-based); the key of per-sample output and of `--resume`.
    pub doc_id: usize,
    /// The dataset's own id, when it has one.
    pub native_id: serde_json::Value,
    pub choices: Vec<LoglikRequest>,
    pub gold: usize,
}

impl McItem {
    /// Whether every choice has the same context (then it is computed once for all).
    pub fn shared_context(&self) -> Option<&str> {
        let first = &self.choices.first()?.context;
        self.choices
            .iter()
            .all(|c| &c.context == first)
            .then_some(first.as_str())
    }
}

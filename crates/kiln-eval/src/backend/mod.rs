//! Who computes log-likelihoods: kiln's own engine on a local model, or any
//! OpenAI-compatible `/v1/completions` endpoint (`echo` + `logprobs`, `max_tokens` 0).

mod endpoint;
mod local;
mod split;

pub use endpoint::{EndpointBackend, EndpointOptions};
pub use local::LocalBackend;
pub use split::{split_request, TokenizedRequest};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::item::McItem;

/// One choice's log-likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChoiceScore {
    /// Sum of the continuation tokens' log-probabilities (natural log).
    pub logprob: f64,
    /// Whether greedy decoding would have produced the continuation.
    pub is_greedy: bool,
    /// Continuation length in tokens.
    pub tokens: usize,
}

/// Greedy generation, for tasks answered in text.
pub trait GenBackend: Send + Sync {
    /// The greedy completion of `prompt`, ended by a stop sequence (not included), an
    /// end-of-sequence token or `max_tokens`.
    fn generate(&self, prompt: &str, stop: &[String], max_tokens: usize) -> Result<String>;
}

pub trait LoglikBackend: Send + Sync {
    /// Scores every choice of one question. Called from several threads at once: a
    /// backend batches what arrives together.
    fn score(&self, item: &McItem) -> Result<Vec<ChoiceScore>>;
    /// What the results record as the model: a path and hash, or an endpoint and name.
    fn describe(&self) -> serde_json::Value;
}

/// A backend for every task kind.
pub trait Backend: LoglikBackend + GenBackend {
    fn as_loglik(&self) -> &dyn LoglikBackend;
    fn as_gen(&self) -> &dyn GenBackend;
}

impl<T: LoglikBackend + GenBackend> Backend for T {
    fn as_loglik(&self) -> &dyn LoglikBackend {
        self
    }
    fn as_gen(&self) -> &dyn GenBackend {
        self
    }
}

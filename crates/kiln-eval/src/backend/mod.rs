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

/// How a completion is decoded: greedy, or sampled (pass@k of code tasks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

impl Decoding {
    pub const GREEDY: Decoding = Decoding {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
}

/// Generation, for tasks answered in text or code.
pub trait GenBackend: Send + Sync {
    /// The completion of `prompt`, ended by a stop sequence (not included), an
    /// end-of-sequence token or `max_tokens`.
    fn generate(
        &self,
        prompt: &str,
        stop: &[String],
        max_tokens: usize,
        decoding: Decoding,
    ) -> Result<String>;

    /// A chat model's greedy reply to one user message (rendered with the model's chat
    /// template locally; `/chat/completions` at an endpoint). Used by the LLM judge.
    fn chat(&self, user: &str, max_tokens: usize) -> Result<String> {
        let _ = (user, max_tokens);
        Err(crate::error::EvalError::Task(
            "this backend cannot chat (the judge needs a chat model)".into(),
        ))
    }
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

//! What is asked of a language model and what comes back, the same for every
//! implementation.

use serde::{Deserialize, Serialize};

/// How a completion is decoded and when it stops.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    pub max_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// Strings that end the completion (not included in it).
    pub stop: Vec<String>,
    /// Completions wanted; completion `i` is sampled with seed `seed + i` (as `n` of
    /// kiln serve and vLLM).
    pub n: usize,
}

impl GenParams {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: vec![],
            n: 1,
        }
    }

    pub fn with_stop(mut self, stop: &[String]) -> Self {
        self.stop = stop.to_vec();
        self
    }
}

/// The text scored: `continuation` given `context`. Choices of one question usually share
/// the context (HellaSwag, ARC); Winogrande's differ in the context and share the
/// continuation ("partial scoring").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoglikRequest {
    pub context: String,
    pub continuation: String,
}

/// One continuation's log-likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoglikScore {
    /// Sum of the continuation tokens' log-probabilities (natural log).
    pub logprob: f64,
    /// Whether greedy decoding would have produced the continuation.
    pub is_greedy: bool,
    /// Continuation length in tokens.
    pub tokens: usize,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens`, or the end of the model's context.
    Length,
}

/// One generated completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    /// Tokens generated (as the model counts them).
    pub tokens: usize,
}

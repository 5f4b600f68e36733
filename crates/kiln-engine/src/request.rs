//! What a client asks the engine for: prompt tokens and how to continue them.

use kiln_model::SamplingParams;
use serde::{Deserialize, Serialize};

/// Engine-assigned id of a request, unique for the engine's lifetime.
pub type RequestId = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineRequest {
    /// Prompt token ids (already templated and tokenized; BOS included if the model wants it).
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    /// New tokens at most. The prompt plus this must fit the model's context.
    pub max_tokens: usize,
    /// Stop strings, matched across token boundaries; the match is not returned.
    pub stop: Vec<String>,
    /// Stop at the model's end-of-sequence tokens.
    pub stop_at_eos: bool,
    /// Log-probabilities of generated tokens: `Some(n)` also returns the n most likely
    /// alternatives at each step (0 for the chosen token alone).
    pub logprobs: Option<usize>,
    /// Log-probabilities of the prompt tokens themselves (OpenAI `echo` + `logprobs`), with
    /// n alternatives each. The positions they need are computed, never taken from the
    /// prefix cache, since cached positions have no logits.
    pub prompt_logprobs: Option<usize>,
    /// With `prompt_logprobs`: score prompt tokens from this index on (at least 1; the first
    /// token has no log-probability). The tokens before the last unscored one may come from
    /// the prefix cache, so the continuations of one context, scored one after another,
    /// compute the context once (log-likelihood evaluation).
    #[serde(default)]
    pub prompt_logprobs_from: usize,
}

impl EngineRequest {
    /// Greedy continuation of `prompt` for up to `max_tokens`, stopping at EOS.
    pub fn greedy(prompt: Vec<u32>, max_tokens: usize) -> Self {
        Self {
            prompt,
            sampling: SamplingParams::greedy(),
            max_tokens,
            stop: vec![],
            stop_at_eos: true,
            logprobs: None,
            prompt_logprobs: None,
            prompt_logprobs_from: 0,
        }
    }
}

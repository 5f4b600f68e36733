//! What the engine streams back for a request.

use serde::{Deserialize, Serialize};

/// Why a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// Cancelled (client gone, timeout, shutdown).
    Abort,
}

/// A token's log-probability, with the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: u32,
    /// The token's own text (may be a partial UTF-8 character, then lossy).
    pub text: String,
    pub logprob: f32,
    /// (token, text, logprob), most likely first.
    pub top: Vec<(u32, String, f32)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EngineEvent {
    /// Log-probabilities of prompt tokens `max(1, prompt_logprobs_from)..` (the first token
    /// has none), when asked for. Sent once, before any generated token.
    PromptLogprobs(Vec<TokenLogprob>),
    /// One generated token. `text` is the text that became final with it: it may be empty
    /// (an incomplete character, or text held back while it could still be a stop string).
    Token {
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The last event of every request.
    Finished { reason: FinishReason, usage: Usage },
    /// The request failed inside the engine; no further events follow.
    Error(String),
}

//! `/v1/completions` (legacy) request and response bodies.

use serde::{Deserialize, Serialize};

use crate::openai::common::{StopSpec, StreamOptions, UsageOut};
use crate::openai::params::SamplingFields;

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Option<PromptSpec>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<i64>,
    pub stop: Option<StopSpec>,
    /// OpenAI's default is 16.
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub seed: Option<i64>,
    /// vLLM's extension: keep generating past end-of-sequence tokens.
    pub ignore_eos: Option<bool>,
    /// Log-probabilities of the tokens, with this many alternatives each.
    pub logprobs: Option<i64>,
    /// Return the prompt before the completion (scored too, with `logprobs`).
    pub echo: Option<bool>,
}

impl CompletionRequest {
    pub fn sampling_fields(&self) -> SamplingFields {
        SamplingFields {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
        }
    }
}

/// `prompt`: text, texts (one choice group each), token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, a list of strings, a list of token ids or a list of such lists"
)]
pub enum PromptSpec {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageOut>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompletionChoice {
    pub index: usize,
    pub text: String,
    pub logprobs: Option<LegacyLogprobs>,
    pub finish_reason: Option<&'static str>,
}

/// The legacy logprobs shape: parallel lists over tokens; the first prompt token has no
/// log-probability (null), nor alternatives.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LegacyLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<Option<f32>>,
    pub top_logprobs: Vec<Option<serde_json::Map<String, serde_json::Value>>>,
    /// Character offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
}

//! `POST /tokenize` (vLLM's): the token ids a prompt or a conversation becomes on this
//! server, exactly as the completion and chat routes build them (`messages` through the
//! model's chat prompt), so a client can count tokens or check a template.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::openai::chat::ChatMessageIn;
use crate::openai::error::ApiError;
use crate::openai::json::OpenAiJson;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<ChatMessageIn>>,
    /// Chat: end where the assistant's reply begins (the only form chat requests use).
    pub add_generation_prompt: Option<bool>,
    /// Prompt: BOS where the model wants one (default true).
    pub add_special_tokens: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct TokenizeResponse {
    pub count: usize,
    pub max_model_len: usize,
    pub tokens: Vec<u32>,
}

pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    OpenAiJson(req): OpenAiJson<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let entry = state.models.resolve(req.model.as_deref())?;
    let tokens = match (&req.prompt, &req.messages) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::bad_request(
                "Give exactly one of 'prompt' and 'messages'.",
            ))
        }
        (None, Some(messages)) => {
            if req.add_generation_prompt == Some(false) {
                return Err(ApiError::invalid(
                    "add_generation_prompt",
                    "Only add_generation_prompt=true is supported (chat requests end where the \
                     reply begins).",
                ));
            }
            super::chat::render(entry, messages)?
        }
        (Some(text), None) => entry
            .engine
            .tokenizer()
            .encode(text, req.add_special_tokens.unwrap_or(true), true)
            .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))?,
    };
    Ok(Json(TokenizeResponse {
        count: tokens.len(),
        max_model_len: entry.engine.context_length(),
        tokens,
    }))
}

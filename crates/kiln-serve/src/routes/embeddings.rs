//! `POST /v1/embeddings`: text in, unit vectors out (float lists or base64), with usage in
//! the embedding model's tokens. Served when the server was started with an embedder.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use base64::Engine as _;

use crate::openai::embeddings::{
    EmbeddingData, EmbeddingInput, EmbeddingList, EmbeddingRequest, EmbeddingUsage, EmbeddingValue,
};
use crate::openai::error::ApiError;
use crate::openai::json::OpenAiJson;
use crate::state::AppState;

/// OpenAI's limit on inputs per request.
pub const MAX_INPUTS: usize = 2048;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Float,
    Base64,
}

/// The texts of a request, checked.
fn texts(input: EmbeddingInput) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenLists(_) => {
            return Err(ApiError::invalid(
                "input",
                "This embedding model takes text, not token ids.",
            ))
        }
    };
    if texts.is_empty() {
        return Err(ApiError::invalid(
            "input",
            "'input' must not be an empty list.",
        ));
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!(
                "'input' has {} items; at most {MAX_INPUTS} are allowed.",
                texts.len()
            ),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(ApiError::invalid(
            format!("input[{i}]"),
            "An input must not be an empty string.",
        ));
    }
    Ok(texts)
}

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    OpenAiJson(req): OpenAiJson<EmbeddingRequest>,
) -> Result<Json<EmbeddingList>, ApiError> {
    let Some(model) = state.embedder.clone() else {
        return Err(ApiError::bad_request(
            "This server has no embedding model (start `kiln serve` with --embedder DIR).",
        ));
    };
    if req.model != model.name() {
        return Err(ApiError::model_not_found(&req.model));
    }
    let format = match req.encoding_format.as_deref() {
        None | Some("float") => Format::Float,
        Some("base64") => Format::Base64,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("'{other}' is not one of 'float', 'base64'."),
            ))
        }
    };
    if let Some(d) = req.dimensions.filter(|&d| d != model.dim()) {
        return Err(ApiError::invalid(
            "dimensions",
            format!(
                "{} gives {}-dimensional vectors and cannot shorten them (asked for {d}).",
                model.name(),
                model.dim()
            ),
        ));
    }
    let texts = texts(req.input)?;
    let name = model.name().to_string();
    // The encoder is compute-bound: off the async workers.
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens = refs
            .iter()
            .map(|t| model.count_tokens(t))
            .sum::<Result<usize, String>>()?;
        Ok::<_, String>((model.embed(&refs)?, tokens))
    })
    .await
    .map_err(|_| ApiError::internal("the embedding task failed"))?
    .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingData {
            object: "embedding",
            embedding: match format {
                Format::Float => EmbeddingValue::Float(v),
                Format::Base64 => EmbeddingValue::Base64(base64_f32(&v)),
            },
            index,
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: name,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// The vector's little-endian f32 bytes in standard base64, as OpenAI sends them.
pub fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    #[test]
    fn inputs_are_checked() {
        assert!(texts(EmbeddingInput::Tokens(vec![1, 2])).is_err());
        assert_eq!(
            texts(EmbeddingInput::Many(vec!["a".into(), String::new()]))
                .unwrap_err()
                .param
                .as_deref(),
            Some("input[1]")
        );
        assert!(texts(EmbeddingInput::Many(vec![])).is_err());
        assert_eq!(texts(EmbeddingInput::One("hi".into())).unwrap(), ["hi"]);
    }
}

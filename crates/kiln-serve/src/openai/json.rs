//! The JSON body extractor for OpenAI routes. axum's own `Json` answers bad bodies in plain
//! text; this one answers in OpenAI's error shape and names the field that is wrong
//! (`messages[0].content`), with 413 for bodies over the server's limit.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::openai::error::ApiError;
use crate::state::AppState;

pub struct OpenAiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<Arc<AppState>> for OpenAiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(state.options.max_body_bytes)
            } else {
                ApiError::bad_request(format!("Could not read the request body: {r}"))
            }
        })?;
        parse_body(&bytes).map(OpenAiJson)
    }
}

/// Parses a request body, blaming the field a type error or missing field is in.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request ({e}). The body must be a \
             JSON object."
        ))
        .with_code("invalid_json")
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let param = match missing_field(&msg) {
            Some(field) if path == "." => field.to_string(),
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        ApiError::invalid(param.clone(), format!("Invalid '{param}': {msg}."))
    })
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        messages: Vec<Msg>,
        max_tokens: Option<i64>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Msg {
        role: String,
        content: String,
    }

    #[test]
    fn errors_name_the_field() {
        let err = |s: &str| parse_body::<Req>(s.as_bytes()).unwrap_err();
        assert_eq!(err("{").param, None);
        assert_eq!(err("{").code, Some("invalid_json"));
        assert_eq!(err("[1]").status, StatusCode::BAD_REQUEST);
        assert_eq!(err("{}").param.as_deref(), Some("messages"));
        let e = err(r#"{"messages": [], "max_tokens": "ten"}"#);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = err(r#"{"messages": [{"role": "user", "content": 5}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = err(r#"{"messages": [{"content": "x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    }
}

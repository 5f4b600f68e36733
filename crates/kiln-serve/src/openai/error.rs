//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
//! HTTP status OpenAI's clients map to their exception types.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_engine::EngineError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: invalid_request_error, authentication_error, ...
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message).with_param(param)
    }

    /// 400 without a single field to blame (a body that is not JSON at all).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_api_key")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown request URL: {path}."),
        )
        .with_code("unknown_url")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "Method not allowed for this URL.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than this server's limit of {limit} bytes."),
        )
        .with_code("payload_too_large")
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("rate_limit_exceeded");
        e.retry_after = Some(retry_after_s.max(1));
        e
    }

    pub fn overloaded(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
            .with_code("overloaded");
        e.retry_after = Some(1);
        e
    }

    pub fn timeout(seconds: f64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            format!("The request did not finish within the server's timeout of {seconds} s."),
        )
        .with_code("timeout")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The prompt plus the tokens asked for do not fit the model's context; names both.
    pub fn context_length(prompt: usize, max_tokens: usize, context: usize, what: &str) -> Self {
        let param = if max_tokens > context {
            "max_tokens"
        } else {
            what
        };
        Self::invalid(
            param,
            format!(
                "This model's maximum context length is {context} tokens. However, you \
                 requested {} tokens ({prompt} in the {what}, {max_tokens} in the completion). \
                 Please reduce the length of the {what} or completion.",
                prompt.saturating_add(max_tokens)
            ),
        )
        .with_code("context_length_exceeded")
    }

    /// The JSON body a streaming response sends in place of a chunk when it fails midway.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    fn body(&self) -> Body<'_> {
        Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        }
    }

    /// `what` is "messages" or "prompt", the field a context overflow blames.
    pub fn from_engine(e: EngineError, what: &str) -> Self {
        match e {
            EngineError::EmptyPrompt => Self::invalid(what, format!("The {what} has no tokens.")),
            EngineError::ContextOverflow {
                prompt,
                max_tokens,
                context,
            } => Self::context_length(prompt, max_tokens, context, what),
            EngineError::CacheTooSmall { .. } => {
                Self::invalid(what, e.to_string()).with_code("context_length_exceeded")
            }
            EngineError::QueueFull { .. } => Self::overloaded(format!(
                "The server is overloaded: {e}. Please retry after a short wait."
            )),
            EngineError::ShuttingDown => Self::overloaded("The server is shutting down."),
            EngineError::InvalidParameter(m) => Self::bad_request(m),
            EngineError::Model(m) => Self::internal(m.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

//! What a server is configured with, apart from its models.

use std::time::Duration;

/// Per-API-key limits (per client when no keys are configured). `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub requests_per_minute: Option<u32>,
    /// Prompt tokens plus the completion tokens a request asks for (`max_tokens` per
    /// choice), charged when it is admitted.
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Accepted bearer keys; empty means no authentication.
    pub api_keys: Vec<String>,
    pub rate_limits: RateLimits,
    /// A request still running after this long is cancelled (504, or an error event in a
    /// stream).
    pub request_timeout: Option<Duration>,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            api_keys: vec![],
            rate_limits: RateLimits::default(),
            request_timeout: None,
            max_body_bytes: 8 << 20,
        }
    }
}

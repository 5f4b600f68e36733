//! Errors of the load generator. A failed request is data (counted, the first few kept as
//! text in the report); these are only for what stops a run or one request.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("invalid --url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "refusing to send load to {host}: it is not a loopback address (127.0.0.0/8, ::1, localhost); \
         pass --allow-remote to benchmark a remote server"
    )]
    RemoteRefused { host: String },
    #[error("invalid load settings: {0}")]
    InvalidConfig(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("server sent an error in the stream: {0}")]
    StreamError(String),
    #[error("malformed stream chunk ({reason}): {data}")]
    BadChunk { reason: String, data: String },
    #[error("stream ended before [DONE] after {tokens} tokens")]
    Truncated { tokens: u64 },
    #[error("stream produced no tokens")]
    NoTokens,
    #[error("cancelled at the --max-seconds time bound")]
    Cancelled,
}

impl From<reqwest::Error> for LoadgenError {
    /// reqwest's own message is only "error sending request for url (...)"; the cause
    /// ("Connection refused", "connection closed before message completed") is in its
    /// sources, and it is what a user needs.
    fn from(e: reqwest::Error) -> Self {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        LoadgenError::Http(msg)
    }
}

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
    /// The request or its stream failed (connection, status, an error chunk).
    #[error(transparent)]
    Stream(#[from] kiln_lm::endpoint::stream::StreamError),
    #[error("stream ended before [DONE] after {tokens} tokens")]
    Truncated { tokens: u64 },
    #[error("stream produced no tokens")]
    NoTokens,
    #[error("cancelled at the --max-seconds time bound")]
    Cancelled,
}

//! Errors of setting a server up (bad options, key files, binding). Errors answered to
//! HTTP clients are [`crate::openai::error::ApiError`].

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("invalid --model {spec:?}: {reason}")]
    ModelSpec { spec: String, reason: String },
    #[error("two models are named {0:?}; give each a distinct NAME=PATH")]
    DuplicateModel(String),
    #[error("no model to serve")]
    NoModel,
    #[error("{path}: cannot read API keys: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: contains no API key (one key per line)")]
    EmptyKeyFile { path: PathBuf },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

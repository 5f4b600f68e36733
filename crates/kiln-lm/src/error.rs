use thiserror::Error;

/// What can go wrong asking a language model. Messages are one line naming the model or
/// URL at fault, so a CLI can print them as they are.
#[derive(Debug, Error)]
pub enum LmError {
    /// An OpenAI-compatible endpoint failed: the URL, and the status or transport error.
    #[error("endpoint {url}: {message}")]
    Endpoint { url: String, message: String },
    #[error("model: {0}")]
    Model(#[from] kiln_model::ModelError),
    #[error("engine: {0}")]
    Engine(String),
    /// A request the model cannot serve (a prompt too long for its context, a
    /// continuation with no tokens of its own, ...).
    #[error("{0}")]
    Request(String),
    /// This model does not offer the call (a completion-only endpoint asked to chat).
    #[error("{0}")]
    Unsupported(String),
}

impl From<kiln_engine::EngineError> for LmError {
    fn from(e: kiln_engine::EngineError) -> Self {
        Self::Engine(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, LmError>;

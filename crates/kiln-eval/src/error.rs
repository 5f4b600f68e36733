use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    // Not a `source` field: the message already holds the cause, and anyhow would print
    // it a second time.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: no examples (the file is empty or has only blank lines)", .path.display())]
    EmptyFile { path: PathBuf },
    #[error("unknown task '{name}'; available: {available}")]
    UnknownTask { name: String, available: String },
    #[error("{0}")]
    Task(String),
    #[error("model: {0}")]
    Model(#[from] kiln_model::ModelError),
    /// The language model failed (an endpoint down, a prompt too long for the model).
    #[error(transparent)]
    Lm(#[from] kiln_lm::LmError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Write(#[from] kiln_model::atomic::AtomicWriteError),
}

pub type Result<T> = std::result::Result<T, EvalError>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |cause| EvalError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RagError {
    // The cause is part of the message (not a `source`), so anyhow prints it once.
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
    #[error("embedder {dir}: {message}")]
    Embedder { dir: PathBuf, message: String },
    #[error("index {dir}: {message}")]
    Index { dir: PathBuf, message: String },
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("bm25: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The language model of reranking, query rewriting or answering.
    #[error("llm: {0}")]
    Llm(#[from] kiln_lm::LmError),
    #[error(transparent)]
    Write(#[from] kiln_model::atomic::AtomicWriteError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, RagError>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RagError + '_ {
    move |cause| RagError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

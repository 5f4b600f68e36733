use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    #[error("this model's maximum context length is {context} tokens; the request has {prompt} prompt tokens and asks for {max_tokens} more ({} in all)", prompt + max_tokens)]
    ContextOverflow {
        prompt: usize,
        max_tokens: usize,
        context: usize,
    },
    #[error("the request needs {needed} KV-cache blocks but the whole cache holds {total} (raise --kv-cache-mb)")]
    CacheTooSmall { needed: usize, total: usize },
    #[error("the queue is full ({max} requests waiting)")]
    QueueFull { max: usize },
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error(transparent)]
    Model(#[from] kiln_model::ModelError),
}

pub type Result<T> = std::result::Result<T, EngineError>;

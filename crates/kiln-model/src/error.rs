use std::path::PathBuf;

/// Everything that can go wrong in the model layer. Messages name the file, tensor or
/// parameter at fault so the CLI can print them as one line.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("unsupported architecture `{0}` (kiln supports llama, mistral, qwen2)")]
    UnsupportedArchitecture(String),
    #[error("tensor `{tensor}` has unsupported quantization type {qtype}")]
    UnsupportedQuant { tensor: String, qtype: String },
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("config: {0}")]
    Config(String),
    #[error("prompt is {prompt} tokens, which with {generate} tokens to generate exceeds the context length of {context}")]
    ContextOverflow {
        prompt: usize,
        generate: usize,
        context: usize,
    },
    #[error("invalid sampling parameter: {0}")]
    InvalidSampling(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("LoRA config: {0}")]
    LoraConfig(String),
    /// A LoRA adapter directory that cannot be read or does not fit the base model.
    #[error("{path}: {msg}")]
    Adapter { path: PathBuf, msg: String },
    /// Boxed: the details would make every `Result` in the crate twice as large.
    #[error("{0}")]
    AdapterShape(Box<AdapterShapeMismatch>),
    #[error("{op}: {msg}")]
    Op { op: &'static str, msg: String },
    #[error("{}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Write(#[from] crate::atomic::AtomicWriteError),
}

impl ModelError {
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}

/// A LoRA factor whose shape does not fit the base model's projection: names the adapter
/// tensor and its shape, and the base's features.
#[derive(Debug, thiserror::Error)]
#[error("{path}: tensor `{tensor}` has shape {found:?}, but the base model's {target} maps {in_features} inputs to {out_features} outputs, so with r = {r} it must be {expected:?}")]
pub struct AdapterShapeMismatch {
    pub path: PathBuf,
    pub tensor: String,
    pub found: Vec<usize>,
    pub expected: Vec<usize>,
    pub target: String,
    pub in_features: usize,
    pub out_features: usize,
    pub r: usize,
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// A candle error as one line: candle appends a backtrace when `RUST_BACKTRACE` is set and
/// puts context on its own line, neither of which belongs in a CLI error.
pub fn candle_message(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => candle_message(inner),
        E::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        other => other.to_string().replace('\n', "; "),
    }
}

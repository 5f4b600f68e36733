//! The crate's one error type. Every message is a single line that names the file, split or
//! parameter at fault, so the CLI can print it as is.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: no such file", .path.display())]
    MissingFile { path: PathBuf },
    /// A run's prepared data that is not there, and how to make it.
    #[error("{}: no such file: the training data is not prepared; {how}", .path.display())]
    MissingData { path: PathBuf, how: String },
    // The io error is in the message rather than exposed as `source`, so that anyhow's
    // `{:#}` chain at the binary does not print it twice.
    #[error("{}: cannot {op}: {err}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        err: std::io::Error,
    },
    #[error("{}: not valid UTF-8 text (invalid byte at offset {offset})", .path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("empty corpus: no text in {} (empty or only whitespace)", PathList(.files))]
    EmptyCorpus { files: Vec<PathBuf> },
    #[error("a vocabulary of {vocab_size} tokens does not fit {dtype} shards (at most {max} ids); use u32")]
    VocabTooLarge {
        vocab_size: u64,
        dtype: &'static str,
        max: u64,
    },
    #[error("vocab_size {requested} is too small: {why}")]
    VocabSizeTooSmall { requested: usize, why: String },
    #[error("special token {token:?}: {why}")]
    InvalidSpecialToken { token: String, why: String },
    #[error("{}: byte offset {offset}: character {ch:?} is not in the tokenizer's vocabulary", .path.display())]
    UnknownChar {
        path: PathBuf,
        offset: usize,
        ch: char,
    },
    #[error("tokenizer: {op}: {msg}")]
    Tokenizer { op: String, msg: String },
    #[error("{}: {msg}", .path.display())]
    Manifest { path: PathBuf, msg: String },
    #[error("{}: expected {expected} bytes ({tokens} {dtype} tokens per the manifest), found {found}", .path.display())]
    ShardSize {
        path: PathBuf,
        tokens: u64,
        dtype: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("{}: {tokens} tokens is too short for windows of ctx {ctx} (needs at least ctx + 1 = {})", .path.display(), .ctx + 1)]
    ShardTooShort {
        path: PathBuf,
        tokens: u64,
        ctx: usize,
    },
    #[error("{}: {msg}", .path.display())]
    Config { path: PathBuf, msg: String },
    #[error("checkpoint {}: {msg}", .path.display())]
    Checkpoint { path: PathBuf, msg: String },
    /// A fine-tuning JSONL line that is not one of the accepted shapes.
    #[error("{}:{line}: {msg}", .path.display())]
    DataLine {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: no examples (the file is empty or has only blank lines)", .path.display())]
    EmptyDataset { path: PathBuf },
    #[error("data position: {0}")]
    DataPosition(String),
    #[error("{0}")]
    Model(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{}: cannot draw the plot: {msg}", .path.display())]
    Plot { path: PathBuf, msg: String },
    #[error("scaling-law fit: {0}")]
    ScalingFit(String),
    #[error("{}", kiln_model::error::candle_message(.0))]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// An I/O failure on `path`; a missing file gets its own variant because it is the most
    /// common user mistake and deserves the plainest message.
    pub fn io(path: &Path, op: &'static str, err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound && (op == "read" || op == "open") {
            return Self::MissingFile { path: path.into() };
        }
        Self::Io {
            path: path.into(),
            op,
            err,
        }
    }

    /// A `tokenizers` error: their messages can span lines (serde, regex), so flatten them.
    pub fn tokenizer(op: impl Into<String>, e: impl fmt::Display) -> Self {
        Self::Tokenizer {
            op: op.into(),
            msg: e.to_string().replace('\n', "; "),
        }
    }
}

/// `a, b and c` for file lists in messages.
struct PathList<'a>(&'a [PathBuf]);

impl fmt::Display for PathList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(|p| p.display().to_string()).collect();
        match names.as_slice() {
            [] => write!(f, "(no input files)"),
            [one] => write!(f, "{one}"),
            [init @ .., last] => write!(f, "{} and {last}", init.join(", ")),
        }
    }
}

impl From<kiln_model::atomic::AtomicWriteError> for TrainError {
    fn from(e: kiln_model::atomic::AtomicWriteError) -> Self {
        Self::Io {
            path: e.path,
            op: e.op,
            err: e.err,
        }
    }
}

impl From<kiln_model::ModelError> for TrainError {
    fn from(e: kiln_model::ModelError) -> Self {
        Self::Model(e.to_string())
    }
}

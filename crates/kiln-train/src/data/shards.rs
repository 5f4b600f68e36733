//! `prepare`: a corpus and a tokenizer in, `train.bin` + `val.bin` + `manifest.json` (and a
//! copy of the tokenizer) out.
//!
//! Shards are raw little-endian ids, u16 when the vocabulary fits (as nanoGPT's `.bin`
//! files, which `np.memmap(path, dtype=np.uint16)` reads), else u32. The split is the tail
//! of the concatenation (see [`SPLIT_RULE`]). Every file is written atomically and the
//! manifest last, after removing any old one, so a crash leaves either a complete directory
//! or one without a manifest, which nothing will read.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::corpus::read_text;
use crate::data::encode::encode_text;
use crate::data::manifest::{
    hex, sha256_hex, Dtype, Manifest, SourceInfo, SplitInfo, TokenizerInfo, FORMAT, FORMAT_VERSION,
    MANIFEST_FILE, SPLIT_RULE,
};
use crate::data::tokenizer_train::vocab_size;
use crate::error::{Result, TrainError};
use kiln_model::atomic::{write_atomic, write_bytes_atomic};

pub const TRAIN_FILE: &str = "train.bin";
pub const VAL_FILE: &str = "val.bin";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The fraction of all tokens that goes to `val.bin`, in `[0, 1)`.
    pub val_fraction: f64,
    /// `None`: u16 when the vocabulary fits, else u32.
    pub dtype: Option<Dtype>,
    /// A token (e.g. `<|endoftext|>`) appended after each file, so documents do not run
    /// into each other.
    pub separator: Option<String>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            val_fraction: 0.1,
            dtype: None,
            separator: None,
        }
    }
}

/// Reported as files are encoded.
#[derive(Debug, Clone, Copy)]
pub struct PrepareProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Tokenizes `inputs` with the `tokenizer.json` at `tokenizer_path` and writes the shard
/// directory `out_dir` (created if needed). Returns the manifest it wrote.
pub fn prepare(
    tokenizer_path: &Path,
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &PrepareOptions,
    progress: &mut dyn FnMut(PrepareProgress),
) -> Result<Manifest> {
    let f = opts.val_fraction;
    if !(0.0..1.0).contains(&f) {
        return Err(TrainError::InvalidArgument(format!(
            "val_fraction must be in [0, 1), got {f}"
        )));
    }
    let tok_bytes =
        std::fs::read(tokenizer_path).map_err(|e| TrainError::io(tokenizer_path, "read", e))?;
    let tok = tokenizers::Tokenizer::from_bytes(&tok_bytes)
        .map_err(|e| TrainError::tokenizer(format!("loading {}", tokenizer_path.display()), e))?;
    let vocab = vocab_size(&tok) as u64;
    let dtype = opts.dtype.unwrap_or(Dtype::for_vocab(vocab));
    dtype.check_vocab(vocab)?;
    let separator = resolve_separator(&tok, opts.separator.as_deref(), tokenizer_path)?;
    let sizes = input_sizes(inputs)?;
    let (ids, sources) = encode_inputs(&tok, inputs, &sizes, separator, progress)?;
    if let Some(&bad) = ids.iter().find(|&&id| u64::from(id) >= vocab) {
        // Cannot happen with a well-formed tokenizer; checked so a u16 cast never truncates.
        return Err(TrainError::tokenizer(
            "encoding",
            format!("id {bad} is outside the vocabulary of {vocab}"),
        ));
    }

    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, "create", e))?;
    remove_if_exists(&out_dir.join(MANIFEST_FILE))?;
    let n_train = train_len(ids.len(), f);
    let (train, val) = ids.split_at(n_train);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        dtype,
        vocab_size: vocab,
        tokenizer: TokenizerInfo {
            file: TOKENIZER_FILE.into(),
            sha256: sha256_hex(&tok_bytes),
        },
        val_fraction: f,
        split_rule: SPLIT_RULE.into(),
        separator: opts.separator.clone(),
        train: write_shard(&out_dir.join(TRAIN_FILE), train, dtype)?,
        val: write_shard(&out_dir.join(VAL_FILE), val, dtype)?,
        sources,
    };
    write_bytes_atomic(&out_dir.join(TOKENIZER_FILE), &tok_bytes)?;
    manifest.save(out_dir)?;
    Ok(manifest)
}

/// The id of the separator token, if one is asked for.
fn resolve_separator(
    tok: &tokenizers::Tokenizer,
    separator: Option<&str>,
    tokenizer_path: &Path,
) -> Result<Option<u32>> {
    separator
        .map(|s| {
            tok.token_to_id(s).ok_or_else(|| {
                TrainError::InvalidArgument(format!(
                    "separator {s:?} is not a token of {}",
                    tokenizer_path.display()
                ))
            })
        })
        .transpose()
}

/// File sizes, read first so that a missing file or an all-empty (or whitespace-only)
/// corpus fails before any work.
fn input_sizes(inputs: &[PathBuf]) -> Result<Vec<u64>> {
    let sizes = inputs
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| TrainError::io(p, "read", e))
        })
        .collect::<Result<Vec<u64>>>()?;
    let mut any_text = false;
    for p in inputs {
        if has_text(p)? {
            any_text = true;
            break;
        }
    }
    if !any_text {
        return Err(TrainError::EmptyCorpus {
            files: inputs.to_vec(),
        });
    }
    Ok(sizes)
}

/// Whether `path` holds anything but ASCII whitespace, read only up to the first such byte
/// (the start of the file, for any real corpus).
fn has_text(path: &Path) -> Result<bool> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, "read", e))?;
    let mut r = std::io::BufReader::new(file);
    loop {
        let buf = r.fill_buf().map_err(|e| TrainError::io(path, "read", e))?;
        if buf.is_empty() {
            return Ok(false);
        }
        if buf.iter().any(|b| !b.is_ascii_whitespace()) {
            return Ok(true);
        }
        let n = buf.len();
        r.consume(n);
    }
}

/// Encodes every file in order (each followed by `separator`), one file in memory at a time.
fn encode_inputs(
    tok: &tokenizers::Tokenizer,
    inputs: &[PathBuf],
    sizes: &[u64],
    separator: Option<u32>,
    progress: &mut dyn FnMut(PrepareProgress),
) -> Result<(Vec<u32>, Vec<SourceInfo>)> {
    let bytes_total: u64 = sizes.iter().sum();
    let mut ids: Vec<u32> = Vec::new();
    let mut sources = Vec::with_capacity(inputs.len());
    let mut bytes_before = 0u64;
    let mut any_text = false;
    for (path, &bytes) in inputs.iter().zip(sizes) {
        let text = read_text(path)?;
        any_text |= !text.trim().is_empty();
        let before = ids.len();
        ids.extend(encode_text(tok, &text, path, &mut |done| {
            progress(PrepareProgress {
                bytes_done: bytes_before + done as u64,
                bytes_total,
            })
        })?);
        ids.extend(separator);
        sources.push(SourceInfo {
            path: path.display().to_string(),
            bytes,
            tokens: (ids.len() - before) as u64,
        });
        bytes_before += bytes;
    }
    if !any_text {
        return Err(TrainError::EmptyCorpus {
            files: inputs.to_vec(),
        });
    }
    Ok((ids, sources))
}

/// Tokens that go to train: nanoGPT's `n = int(len * 0.9)`.
fn train_len(total: usize, val_fraction: f64) -> usize {
    ((total as f64 * (1.0 - val_fraction)).floor() as usize).min(total)
}

/// Writes `tokens` as little-endian `dtype` and describes the file.
fn write_shard(path: &Path, tokens: &[u32], dtype: Dtype) -> Result<SplitInfo> {
    let mut hasher = Sha256::new();
    write_atomic(path, |w: &mut dyn Write| {
        let mut buf = Vec::with_capacity((1 << 16) * dtype.size());
        for chunk in tokens.chunks(1 << 16) {
            buf.clear();
            match dtype {
                // Ids were checked against the vocabulary, which fits the dtype.
                Dtype::U16 => chunk
                    .iter()
                    .for_each(|&t| buf.extend_from_slice(&(t as u16).to_le_bytes())),
                Dtype::U32 => chunk
                    .iter()
                    .for_each(|&t| buf.extend_from_slice(&t.to_le_bytes())),
            }
            hasher.update(&buf);
            w.write_all(&buf)?;
        }
        Ok(())
    })?;
    Ok(SplitInfo {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        tokens: tokens.len() as u64,
        sha256: hex(&hasher.finalize()),
    })
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(TrainError::io(path, "remove", e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_nanogpt() {
        assert_eq!(train_len(1000, 0.1), 900);
        assert_eq!(train_len(10, 0.1), 9);
        assert_eq!(train_len(7, 0.0), 7);
        assert_eq!(train_len(0, 0.5), 0);
        // nanoGPT shakespeare_char: 1,115,394 chars -> 1,003,854 train, 111,540 val.
        assert_eq!(train_len(1_115_394, 0.1), 1_003_854);
    }
}

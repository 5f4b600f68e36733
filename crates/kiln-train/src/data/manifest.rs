//! `manifest.json`: what a shard directory holds. It is written last, so a directory with a
//! manifest is complete; readers check shard sizes against it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};
use kiln_model::atomic::write_bytes_atomic;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "kiln-token-shards";
pub const FORMAT_VERSION: u32 = 1;
/// How the validation split is taken, recorded so a reader need not guess.
pub const SPLIT_RULE: &str = "tail of the concatenation: files are encoded in the order given \
    and concatenated; the last val_fraction of all tokens is val (nanoGPT's 90/10 split of the \
    whole text)";

/// Token id width on disk, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// The narrowest type that holds ids `0..vocab_size` (u16 up to 65,536 ids, as nanoGPT).
    pub fn for_vocab(vocab_size: u64) -> Self {
        if vocab_size <= Self::U16.max_vocab() {
            Self::U16
        } else {
            Self::U32
        }
    }

    pub fn size(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::U16 => "u16",
            Self::U32 => "u32",
        }
    }

    /// How many distinct ids fit.
    pub fn max_vocab(self) -> u64 {
        match self {
            Self::U16 => 1 << 16,
            Self::U32 => 1 << 32,
        }
    }

    /// Fails when ids `0..vocab_size` do not fit.
    pub fn check_vocab(self, vocab_size: u64) -> Result<()> {
        if vocab_size > self.max_vocab() {
            return Err(TrainError::VocabTooLarge {
                vocab_size,
                dtype: self.name(),
                max: self.max_vocab(),
            });
        }
        Ok(())
    }
}

impl std::str::FromStr for Dtype {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "u16" => Ok(Self::U16),
            "u32" => Ok(Self::U32),
            _ => Err(TrainError::InvalidArgument(format!(
                "unknown dtype {s:?} (allowed: u16, u32)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
        }
    }
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// File name, relative to the manifest's directory.
    pub file: String,
    pub tokens: u64,
    pub sha256: String,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: String,
    pub bytes: u64,
    pub tokens: u64,
}

/// The tokenizer the shards were made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// A copy kept next to the shards, relative to the manifest's directory.
    pub file: String,
    /// Of the `tokenizer.json` bytes: a training run can check it uses the same tokenizer.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub dtype: Dtype,
    /// Ids are in `0..vocab_size`.
    pub vocab_size: u64,
    pub tokenizer: TokenizerInfo,
    pub val_fraction: f64,
    pub split_rule: String,
    /// A token appended after every file, if any (e.g. `<|endoftext|>`).
    pub separator: Option<String>,
    pub train: SplitInfo,
    pub val: SplitInfo,
    pub sources: Vec<SourceInfo>,
}

impl Manifest {
    pub fn split(&self, split: Split) -> &SplitInfo {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Reads `path`, or `path/manifest.json` when `path` is a directory.
    pub fn load(path: &Path) -> Result<Self> {
        let file = manifest_path(path);
        let bytes = std::fs::read(&file).map_err(|e| TrainError::io(&file, "read", e))?;
        let bad = |msg: String| TrainError::Manifest {
            path: file.clone(),
            msg,
        };
        // The header first, so a newer format says so instead of failing on a field.
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let h: Header = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a kiln shard manifest: {e}")))?;
        if h.format != FORMAT || h.version != FORMAT_VERSION {
            return Err(bad(format!(
                "unsupported format {:?} version {} (this kiln reads {FORMAT:?} version {FORMAT_VERSION})",
                h.format, h.version
            )));
        }
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("bad manifest: {e}")))?;
        if m.vocab_size > m.dtype.max_vocab() {
            // The shards could not hold the ids the model would be built for.
            return Err(bad(format!(
                "dtype {} holds at most {} ids but vocab_size is {} (re-run `kiln data \
                 prepare`, which writes u32 shards for such a vocabulary)",
                m.dtype.name(),
                m.dtype.max_vocab(),
                m.vocab_size
            )));
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut json = serde_json::to_string_pretty(self).map_err(|e| TrainError::Manifest {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        json.push('\n');
        Ok(write_bytes_atomic(&path, json.as_bytes())?)
    }
}

/// `path` itself, or `path/manifest.json` for a directory (or a missing path that does not
/// name a `.json` file).
pub fn manifest_path(path: &Path) -> PathBuf {
    let json = path.extension().is_some_and(|e| e == "json");
    if path.is_dir() || (!json && !path.exists()) {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_is_u16_up_to_65536_ids() {
        assert_eq!(Dtype::for_vocab(65), Dtype::U16);
        assert_eq!(Dtype::for_vocab(65_536), Dtype::U16);
        assert_eq!(Dtype::for_vocab(65_537), Dtype::U32);
        assert!(Dtype::U16.check_vocab(65_536).is_ok());
        let e = Dtype::U16.check_vocab(100_277).unwrap_err();
        assert!(matches!(e, TrainError::VocabTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("100277") && e.to_string().contains("u16"));
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn unknown_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MANIFEST_FILE);
        std::fs::write(&p, r#"{"format":"kiln-token-shards","version":9}"#).unwrap();
        let e = Manifest::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        std::fs::write(&p, "not json").unwrap();
        let e = Manifest::load(&p).unwrap_err();
        assert!(e.to_string().contains("not a kiln shard manifest"), "{e}");
    }
}

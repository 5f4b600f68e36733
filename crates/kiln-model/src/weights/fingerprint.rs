//! A model's identity in results: its path and a sha256 of its weights (a GGUF file, or a
//! Hugging Face directory's safetensors), so two results files (an evaluation, a RAG
//! index's embedder) say whether they used the same model.

use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |e| ModelError::file(path, e)
}

/// sha256 of the files' bytes, one after another.
pub fn sha256_files(files: &[std::path::PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut r = std::fs::File::open(f).map_err(io_err(f))?;
        loop {
            let n = r.read(&mut buf).map_err(io_err(f))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

fn weight_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// `{"path", "sha256", "adapter", "adapter_sha256"}` of a local model.
pub fn model_fingerprint(model: &Path, adapter: Option<&Path>) -> Result<Value> {
    let hash = |p: &Path| {
        if p.is_dir() {
            sha256_files(&weight_files(p))
        } else {
            sha256_files(&[p.to_path_buf()])
        }
    };
    let mut v = json!({"path": model.display().to_string(), "sha256": hash(model)?});
    if let Some(a) = adapter {
        v["adapter"] = json!(a.display().to_string());
        v["adapter_sha256"] = json!(hash(a)?);
    }
    Ok(v)
}

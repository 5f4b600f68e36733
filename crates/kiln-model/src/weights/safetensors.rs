//! Hugging Face safetensors checkpoints: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, memory-mapped.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};

use crate::error::{ModelError, Result};
use crate::layers::Weight;
use crate::weights::WeightSource;

pub struct SafetensorsSource {
    files: MmapedSafetensors,
    names: std::collections::HashSet<String>,
    device: Device,
}

impl SafetensorsSource {
    /// Opens the checkpoint in HF directory `dir`.
    pub fn open_dir(dir: &Path, device: &Device) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index.exists() {
            shard_files(&index)?
        } else {
            return Err(ModelError::file(
                dir,
                "no model.safetensors or model.safetensors.index.json in this directory",
            ));
        };
        Self::open_files(&files, device)
    }

    pub fn open_files(files: &[PathBuf], device: &Device) -> Result<Self> {
        for f in files {
            check_header(f)?;
        }
        // SAFETY: the files are mapped read-only; kiln does not modify checkpoints while
        // they are loaded.
        let st = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| {
            ModelError::file(
                &files[0],
                format!("invalid safetensors: {}", crate::error::candle_message(&e)),
            )
        })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            files: st,
            names,
            device: device.clone(),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.names.iter()
    }
}

/// Rejects truncated or corrupt files with a clear message before mapping them: the header
/// must parse and every tensor's byte range must lie inside the file. Reads only the header.
fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |msg: String| {
        ModelError::file(
            path,
            format!("corrupt or truncated safetensors file: {msg}"),
        )
    };
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::file(path, e))?;
    let size = f.metadata()?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad(format!("{size} bytes is too short for a header")))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 || 8 + n > size {
        return Err(bad(format!(
            "header of {n} bytes does not fit a {size}-byte file"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    for (name, info) in obj.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let end = info
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .ok_or_else(|| bad(format!("tensor `{name}` has no data_offsets")))?;
        if 8 + n + end > size {
            return Err(bad(format!(
                "tensor `{name}` ends at byte {} but the file has {size}",
                8 + n + end
            )));
        }
    }
    Ok(())
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::file(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::file(index, e))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::file(index, "missing `weight_map` object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| dir.join(f))
        .collect();
    files.sort();
    files.dedup();
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        return Err(ModelError::file(
            missing,
            "shard listed in the index is missing",
        ));
    }
    Ok(files)
}

impl WeightSource for SafetensorsSource {
    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn get(&self, name: &str) -> Result<Weight> {
        let t = self.files.load(name, &self.device)?;
        let t = match t.dtype() {
            DType::F32 => t,
            DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
            other => {
                return Err(ModelError::UnsupportedQuant {
                    tensor: name.to_string(),
                    qtype: format!("{other:?}"),
                })
            }
        };
        Ok(Weight::Dense(t))
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

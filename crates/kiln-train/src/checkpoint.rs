//! Checkpoints: everything a run needs to continue exactly where it stopped, written so a
//! crash at any moment leaves the previous checkpoint intact. Each is a directory
//! `checkpoints/step-NNNNNN/` with `model.safetensors` (parameters), `optimizer.safetensors`
//! (AdamW moments) and `state.json` (step, data RNG, the model configuration). It is
//! assembled under a temporary name, every file fsynced, and only then renamed into place.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::Param;
use serde::{Deserialize, Serialize};

use crate::adamw::AdamW;
use crate::error::{Result, TrainError};
use crate::rng::DataRngState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: u64,
    pub rng: DataRngState,
    pub model: ModelConfig,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.into(),
        msg: msg.to_string().replace('\n', "; "),
    }
}

fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, "sync", e))
}

/// Writes the checkpoint for `state.step` under `run/checkpoints` and keeps the newest `keep`.
pub fn save(
    run: &Path,
    params: &[Param],
    opt: &AdamW,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf> {
    let root = run.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, "create", e))?;
    let name = format!("step-{:06}", state.step);
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, "remove", e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, "create", e))?;
    let weights: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    for (file, tensors) in [
        ("model.safetensors", weights),
        ("optimizer.safetensors", opt.state()),
    ] {
        let path = tmp.join(file);
        candle_core::safetensors::save(&tensors, &path).map_err(|e| err(&path, e))?;
        sync(&path)?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| err(&tmp, e))?;
    let path = tmp.join("state.json");
    std::fs::write(&path, json).map_err(|e| TrainError::io(&path, "write", e))?;
    sync(&path)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, "remove", e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, "rename", e))?;
    sync(&root)?;
    for old in list(run)?.into_iter().rev().skip(keep.max(1)) {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, "remove", e))?;
    }
    Ok(dir)
}

/// Complete checkpoints of a run, oldest first (partial ones are ignored).
pub fn list(run: &Path) -> Result<Vec<PathBuf>> {
    let root = run.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(vec![]);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").exists()
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Loads `dir` into the run's parameters and optimizer; the checkpoint must belong to a
/// model of configuration `model` or the error says what differs.
pub fn load(
    dir: &Path,
    model: &ModelConfig,
    params: &[Param],
    opt: &mut AdamW,
) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    let text = std::fs::read(&path).map_err(|e| TrainError::io(&path, "read", e))?;
    let state: CheckpointState = serde_json::from_slice(&text).map_err(|e| err(&path, e))?;
    if &state.model != model {
        return Err(err(
            dir,
            "was written for a different model configuration than this config file describes",
        ));
    }
    let read = |file: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(file);
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| err(&p, e))
    };
    let weights = read("model.safetensors")?;
    for p in params {
        let t = weights
            .get(&p.name)
            .ok_or_else(|| err(dir, format!("model.safetensors has no `{}`", p.name)))?;
        if t.dims() != p.var.as_tensor().dims() {
            return Err(err(
                dir,
                format!(
                    "`{}` has shape {:?}, the model needs {:?}",
                    p.name,
                    t.dims(),
                    p.var.as_tensor().dims()
                ),
            ));
        }
        p.var.set(&t.to_dtype(p.var.as_tensor().dtype())?)?;
    }
    let moments = read("optimizer.safetensors")?;
    opt.restore(&moments, state.step).map_err(|m| err(dir, m))?;
    Ok(state)
}

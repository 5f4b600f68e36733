//! Checkpoints: everything a run needs to continue exactly where it stopped, written so a
//! crash at any moment leaves the previous checkpoint intact. Each is a directory
//! `checkpoints/step-NNNNNN/` with `model.safetensors` (parameters), `optimizer.safetensors`
//! (AdamW moments) and `state.json` (step, data RNG, the model configuration, and the
//! SHA-256 of both tensor files). It is assembled under a temporary name
//! (`.step-NNNNNN.partial`), every file fsynced, and only then renamed into place; a failed
//! write removes the temporary directory and says which checkpoint is still the newest.
//! Loading checks the hashes, the configuration and every tensor before changing anything,
//! and names the file at fault.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::Param;
use serde::{Deserialize, Serialize};

use crate::data::manifest::sha256_hex;
use crate::data::rng::{DataRng, DataRngState};
use crate::error::{Result, TrainError};
use crate::optim::adamw::AdamW;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: u64,
    pub rng: DataRngState,
    pub model: ModelConfig,
    /// What else a loop needs to continue (fine-tuning: its data position and run config),
    /// checked and restored by that loop.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// The hashes `state.json` keeps next to the state (absent in checkpoints of older kilns,
/// which then load unchecked).
#[derive(Debug, Default, Deserialize)]
struct Hashes {
    #[serde(default)]
    sha256: BTreeMap<String, String>,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.into(),
        msg: msg.to_string().replace('\n', "; "),
    }
}

/// fsyncs a file or directory of a checkpoint being written (the directory as a whole is
/// then renamed into place: the directory form of kiln_model's atomic writes).
fn sync(path: &Path) -> Result<()> {
    if path.is_dir() {
        Ok(kiln_model::atomic::sync_dir(path)?)
    } else {
        Ok(kiln_model::atomic::sync_file(path)?)
    }
}

/// The step of a `step-NNNNNN` name.
fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Removes `path` whatever it is (kiln's own temporary names only).
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the checkpoint for `state.step` under `run/checkpoints` and keeps the newest `keep`.
///
/// Checkpoints of later steps (left by an earlier, longer run into the same directory) are
/// removed once this one is safely on disk: the newest checkpoint is always the state just
/// written, so `--resume` can never continue another run's timeline.
pub fn save(
    run: &Path,
    params: &[Param],
    opt: &AdamW,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf> {
    let root = run.join("checkpoints");
    let name = format!("step-{:06}", state.step);
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    if let Err(e) = write_dir(&root, &tmp, &dir, params, opt, state) {
        // Best effort: the partial directory is never listed, this only saves the space.
        let _ = remove_any(&tmp);
        let intact = match list(run).ok().and_then(|l| l.last().cloned()) {
            Some(p) => format!(
                "; the previous checkpoint {} is intact",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => String::new(),
        };
        // The inner error without its own `checkpoint ` prefix.
        let why = match e {
            TrainError::Checkpoint { path, msg } => format!("{}: {msg}", path.display()),
            other => other.to_string(),
        };
        return Err(err(&dir, format!("not written: {why}{intact}")));
    }
    let all = list(run)?;
    let newer = all.iter().filter(|p| checkpoint_step(p) > Some(state.step));
    let older: Vec<&PathBuf> = all
        .iter()
        .filter(|p| checkpoint_step(p) < Some(state.step))
        .collect();
    let excess = older.len().saturating_sub(keep.max(1) - 1);
    for old in newer.chain(older.into_iter().take(excess)) {
        std::fs::remove_dir_all(old).map_err(|e| TrainError::io(old, "remove", e))?;
    }
    Ok(dir)
}

fn checkpoint_step(dir: &Path) -> Option<u64> {
    dir.file_name().and_then(|n| n.to_str()).and_then(step_of)
}

/// Assembles the checkpoint in `tmp`, then renames it to `dir`.
fn write_dir(
    root: &Path,
    tmp: &Path,
    dir: &Path,
    params: &[Param],
    opt: &AdamW,
    state: &CheckpointState,
) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, "create", e))?;
    // A leftover of an earlier failed or killed write.
    remove_any(tmp).map_err(|e| TrainError::io(tmp, "remove", e))?;
    if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(err(
            dir,
            "exists and is not a checkpoint directory (move it out of the way)",
        ));
    }
    std::fs::create_dir_all(tmp).map_err(|e| TrainError::io(tmp, "create", e))?;
    let weights: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    let mut hashes = BTreeMap::new();
    for (file, tensors) in [(MODEL_FILE, weights), (OPTIMIZER_FILE, opt.state())] {
        let path = tmp.join(file);
        candle_core::safetensors::save(&tensors, &path).map_err(|e| {
            let msg = kiln_model::error::candle_message(&e);
            err(&path, format!("cannot write: {msg}"))
        })?;
        sync(&path)?;
        // Hashed as read back, so the hash is of what is on disk.
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, "read", e))?;
        hashes.insert(file.to_string(), sha256_hex(&bytes));
    }
    let mut json = serde_json::to_value(state).map_err(|e| err(tmp, e))?;
    json["sha256"] = serde_json::to_value(&hashes).map_err(|e| err(tmp, e))?;
    let text = serde_json::to_vec_pretty(&json).map_err(|e| err(tmp, e))?;
    let path = tmp.join(STATE_FILE);
    std::fs::write(&path, text).map_err(|e| TrainError::io(&path, "write", e))?;
    sync(&path)?;
    // Replacing a checkpoint of the same step (a fresh run into an old run directory): the
    // old one is moved aside, not deleted, until the new one is in place.
    let aside = root.join(format!(
        ".{}.old",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let replacing = dir.exists();
    if replacing {
        remove_any(&aside).map_err(|e| TrainError::io(&aside, "remove", e))?;
        std::fs::rename(dir, &aside).map_err(|e| TrainError::io(dir, "rename", e))?;
    }
    if let Err(e) = std::fs::rename(tmp, dir) {
        if replacing {
            let _ = std::fs::rename(&aside, dir);
        }
        return Err(TrainError::io(dir, "rename into place", e));
    }
    sync(root)?;
    if replacing {
        let _ = remove_any(&aside);
    }
    Ok(())
}

/// Complete checkpoints of a run, oldest first: `step-NNNNNN` directories with a
/// `state.json` (partial ones, which are renamed into place only once complete, are
/// ignored).
pub fn list(run: &Path) -> Result<Vec<PathBuf>> {
    let root = run.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(vec![]);
    };
    let mut dirs: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((checkpoint_step(&p)?, p)))
        .filter(|(_, p)| p.is_dir() && p.join(STATE_FILE).is_file())
        .collect();
    // By step, not by name: step-1000000 comes after step-999999.
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, p)| p).collect())
}

/// Loads the newest checkpoint of `run` (see [`load`]); its directory and state.
pub fn load_latest(
    run: &Path,
    model: &ModelConfig,
    params: &[Param],
    opt: &mut AdamW,
) -> Result<(PathBuf, CheckpointState)> {
    let all = list(run)?;
    let Some(last) = all.last() else {
        return Err(err(
            &run.join("checkpoints"),
            "no checkpoint to resume from (train without --resume to start the run)",
        ));
    };
    match load(last, model, params, opt) {
        Ok(state) => Ok((last.clone(), state)),
        // A damaged newest checkpoint: say how to fall back to the one before it.
        Err(TrainError::Checkpoint { path, msg })
            if all.len() > 1 && (msg.starts_with("corrupt") || msg.starts_with("cannot read")) =>
        {
            let prev = all[all.len() - 2].file_name().unwrap_or_default();
            Err(TrainError::Checkpoint {
                path,
                msg: format!(
                    "{msg} (to resume from the previous checkpoint, {}, delete {})",
                    prev.to_string_lossy(),
                    last.display()
                ),
            })
        }
        Err(e) => Err(e),
    }
}

/// Loads `dir` into the run's parameters and optimizer. Everything is checked before
/// anything changes: the files' hashes, that the checkpoint belongs to a model of
/// configuration `model` (else the error lists what differs, by config key), and every
/// tensor's presence and shape.
pub fn load(
    dir: &Path,
    model: &ModelConfig,
    params: &[Param],
    opt: &mut AdamW,
) -> Result<CheckpointState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read(&path).map_err(|e| err(&path, format!("cannot read: {e}")))?;
    let corrupt = |e: serde_json::Error| err(&path, format!("corrupt ({e})"));
    let state: CheckpointState = serde_json::from_slice(&text).map_err(corrupt)?;
    let hashes: Hashes = serde_json::from_slice(&text).map_err(corrupt)?;
    // The one state xoshiro256** never reaches (and the only one `from_state` refuses).
    DataRng::from_state(state.rng)
        .map_err(|_| err(&path, "corrupt: its data RNG state is all zeros"))?;
    if &state.model != model {
        return Err(err(
            &path,
            format!(
                "was written for a different model: {} (resume with the config the run was \
                 trained with, or train into a new --out)",
                config_diff(&state.model, model)
            ),
        ));
    }
    let read = |file: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(file);
        let bytes = std::fs::read(&p).map_err(|e| err(&p, format!("cannot read: {e}")))?;
        if let Some(want) = hashes.sha256.get(file) {
            if &sha256_hex(&bytes) != want {
                return Err(err(
                    &p,
                    format!(
                        "corrupt: its SHA-256 differs from the one in {STATE_FILE} \
                         (truncated or modified after it was written)"
                    ),
                ));
            }
        }
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            err(
                &p,
                format!(
                    "corrupt or truncated: {}",
                    kiln_model::error::candle_message(&e)
                ),
            )
        })
    };
    let weights = read(MODEL_FILE)?;
    let moments = read(OPTIMIZER_FILE)?;
    let model_path = dir.join(MODEL_FILE);
    let mut values = Vec::with_capacity(params.len());
    for p in params {
        let t = weights
            .get(&p.name)
            .ok_or_else(|| err(&model_path, format!("has no tensor `{}`", p.name)))?;
        if t.dims() != p.var.as_tensor().dims() {
            return Err(err(
                &model_path,
                format!(
                    "`{}` has shape {:?}, the model needs {:?}",
                    p.name,
                    t.dims(),
                    p.var.as_tensor().dims()
                ),
            ));
        }
        values.push(t.to_dtype(p.var.as_tensor().dtype())?);
    }
    opt.restore(&moments, state.step)
        .map_err(|m| err(&dir.join(OPTIMIZER_FILE), m))?;
    for (p, t) in params.iter().zip(&values) {
        p.var.set(t)?;
    }
    Ok(state)
}

/// `d_model 32 in the checkpoint, 16 in the config; ...`: the fields where two model
/// configurations differ, named as the TOML config names them.
fn config_diff(saved: &ModelConfig, now: &ModelConfig) -> String {
    let (a, b) = match (serde_json::to_value(saved), serde_json::to_value(now)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return "the configurations differ".into(),
    };
    let mut diffs = vec![];
    diff_values("", &a, &b, &mut diffs);
    let key = |path: &str| -> String {
        match path {
            "hidden_size" => "d_model",
            "intermediate_size" => "ffn",
            "num_layers" => "n_layer",
            "num_heads" => "n_head",
            "num_kv_heads" => "n_kv_head",
            "max_position_embeddings" => "context",
            "tie_word_embeddings" => "tied_embeddings",
            "rope.theta" => "rope_theta",
            "kinds.norm" => "norm",
            "kinds.position" => "position",
            "kinds.mlp" => "mlp",
            "vocab_size" => "vocabulary size (of the data's tokenizer)",
            other => other,
        }
        .to_string()
    };
    // head_dim follows from d_model and n_head; name it only when nothing else explains it.
    let explained = diffs
        .iter()
        .any(|(p, ..)| p == "hidden_size" || p == "num_heads");
    let parts: Vec<String> = diffs
        .iter()
        .filter(|(p, ..)| !(explained && p == "head_dim"))
        .map(|(p, x, y)| format!("{} {x} in the checkpoint, {y} in the config", key(p)))
        .collect();
    if parts.is_empty() {
        "the configurations differ".into()
    } else {
        parts.join("; ")
    }
}

fn diff_values(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(
                    &sub,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => {
            let show = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((path.to_string(), show(a), show(b)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_sort_by_number() {
        assert_eq!(step_of("step-000010"), Some(10));
        assert_eq!(step_of("step-1000000"), Some(1_000_000));
        assert_eq!(step_of("step-"), None);
        assert_eq!(step_of("step-12.bak"), None);
        assert_eq!(step_of(".step-000010.partial"), None);
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "step-1000000",
            "step-999999",
            "step-000002",
            ".step-000003.partial",
        ] {
            let d = dir.path().join("checkpoints").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(STATE_FILE), "{}").unwrap();
        }
        // A file where a checkpoint would be, and a directory without state.json.
        std::fs::write(dir.path().join("checkpoints/step-000004"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints/step-000005")).unwrap();
        let names: Vec<String> = list(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["step-000002", "step-999999", "step-1000000"]);
    }
}

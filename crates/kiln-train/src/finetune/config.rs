//! `kiln finetune sft|dpo --config FILE.toml`: the base model, the JSONL data, the LoRA
//! adapter and the optimisation, parsed strictly (an unknown key is an error naming it and
//! its line). Paths are relative to the config file.
//!
//! ```toml
//! [model]
//! path = "SmolLM2-135M-Instruct.Q4_1.gguf"   # or a HF directory or a kiln run dir
//! [data]
//! train = "train.jsonl"
//! eval = "eval.jsonl"          # optional
//! [lora]
//! r = 8
//! alpha = 16
//! target_modules = ["q_proj", "v_proj"]
//! [train]
//! max_steps = 300
//! batch_size = 4
//! lr = 2e-4
//! ```

use std::path::{Path, PathBuf};

use kiln_model::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::dpo_loss::DpoSettings;
use crate::error::{Result, TrainError};
use crate::sft_data::TrainOn;
use crate::train_config::toml_error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    pub model: FtModelSection,
    pub data: FtDataSection,
    pub lora: FtLoraSection,
    pub train: FtTrainSection,
    /// DPO's settings (`kiln finetune dpo`); defaults when absent.
    #[serde(default)]
    pub dpo: DpoSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtModelSection {
    /// A GGUF file, a Hugging Face directory or a kiln run directory.
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtDataSection {
    pub train: PathBuf,
    pub eval: Option<PathBuf>,
    /// Tokens per example; longer ones are cut (and counted).
    #[serde(default = "max_len")]
    pub max_len: usize,
    /// Which tokens the loss covers: the assistant's (or the completion's), or all.
    #[serde(default)]
    pub train_on: TrainOn,
    /// Batches per shuffled window within which examples are sorted by length.
    #[serde(default = "bucket_window")]
    pub bucket_window: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtLoraSection {
    pub r: usize,
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub use_rslora: bool,
    /// Start from this adapter's factors (a `kiln finetune sft` run, for DPO after SFT)
    /// instead of fresh ones; its r, alpha and target modules must match.
    pub init: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtTrainSection {
    pub max_steps: u64,
    pub batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    pub lr: f64,
    /// The cosine's floor; lr / 10 when absent.
    pub min_lr: Option<f64>,
    #[serde(default)]
    pub warmup: u64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "beta1")]
    pub beta1: f64,
    #[serde(default = "beta2")]
    pub beta2: f64,
    #[serde(default = "grad_clip")]
    pub grad_clip: f64,
    #[serde(default = "eval_every")]
    pub eval_every: u64,
    #[serde(default = "checkpoint_every")]
    pub checkpoint_every: u64,
    #[serde(default = "keep")]
    pub keep: usize,
    #[serde(default = "seed")]
    pub seed: u64,
}

fn max_len() -> usize {
    512
}
fn bucket_window() -> usize {
    8
}
fn one() -> usize {
    1
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn grad_clip() -> f64 {
    1.0
}
fn eval_every() -> u64 {
    50
}
fn checkpoint_every() -> u64 {
    50
}
fn keep() -> usize {
    2
}
fn seed() -> u64 {
    1337
}

impl FinetuneConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, "read", e))?;
        let mut cfg = Self::parse(&text).map_err(|msg| TrainError::Config {
            path: path.into(),
            msg,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut cfg.model.path);
        rebase(&mut cfg.data.train);
        if let Some(e) = cfg.data.eval.as_mut() {
            rebase(e);
        }
        if let Some(i) = cfg.lora.init.as_mut() {
            rebase(i);
        }
        Ok(cfg)
    }

    /// Parses TOML text; the error is one line with the position and the offending key.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let cfg: Self = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        let positive = [
            ("[train] max_steps", t.max_steps as f64),
            ("[train] batch_size", t.batch_size as f64),
            ("[train] grad_accum", t.grad_accum as f64),
            ("[train] lr", t.lr),
            ("[train] eval_every", t.eval_every as f64),
            ("[train] checkpoint_every", t.checkpoint_every as f64),
            ("[data] max_len", self.data.max_len as f64),
            ("[data] bucket_window", self.data.bucket_window as f64),
        ];
        for (key, v) in positive {
            if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(format!("{key} = {v}: must be greater than 0"));
            }
        }
        self.lora_config().validate().map_err(|e| e.to_string())?;
        let d = &self.dpo;
        if d.beta.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(format!("[dpo] beta = {}: must be greater than 0", d.beta));
        }
        if !(0.0..0.5).contains(&d.label_smoothing) {
            return Err(format!(
                "[dpo] label_smoothing = {}: must be in [0, 0.5)",
                d.label_smoothing
            ));
        }
        if !(d.rpo_alpha >= 0.0 && d.rpo_alpha.is_finite()) {
            return Err(format!(
                "[dpo] rpo_alpha = {}: must be 0 or more",
                d.rpo_alpha
            ));
        }
        Ok(())
    }

    pub fn lora_config(&self) -> LoraConfig {
        let l = &self.lora;
        LoraConfig {
            r: l.r,
            alpha: l.alpha,
            dropout: l.dropout,
            target_modules: l.target_modules.clone(),
            use_rslora: l.use_rslora,
            base_model_name_or_path: Some(self.model.path.display().to_string()),
        }
    }

    pub fn min_lr(&self) -> f64 {
        self.train.min_lr.unwrap_or(self.train.lr / 10.0)
    }

    /// `[train] lr 0.0002 in the checkpoint, 0.0001 now; ...`: every key that differs
    /// between the config a run was started with and this one.
    pub fn diff(&self, saved: &FinetuneConfig) -> Vec<String> {
        let (Ok(now), Ok(then)) = (serde_json::to_value(self), serde_json::to_value(saved)) else {
            return vec!["the config".into()];
        };
        let mut out = vec![];
        for section in ["model", "data", "lora", "train", "dpo"] {
            let (a, b) = (&then[section], &now[section]);
            let keys: std::collections::BTreeSet<&String> = a
                .as_object()
                .into_iter()
                .chain(b.as_object())
                .flat_map(|m| m.keys())
                .collect();
            for k in keys {
                if a[k.as_str()] != b[k.as_str()] {
                    out.push(format!(
                        "[{section}] {k} {} in the checkpoint, {} now",
                        a[k.as_str()],
                        b[k.as_str()]
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
path = "m.gguf"
[data]
train = "train.jsonl"
[lora]
r = 8
alpha = 16
target_modules = ["q_proj", "v_proj"]
[train]
max_steps = 300
batch_size = 4
lr = 2e-4
"#;

    #[test]
    fn the_issues_example_parses_with_defaults() {
        let c = FinetuneConfig::parse(GOOD).unwrap();
        assert_eq!(c.data.max_len, 512);
        assert_eq!(c.train.grad_accum, 1);
        assert!((c.min_lr() - 2e-5).abs() < 1e-12);
        assert!((c.lora_config().scaling() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = FinetuneConfig::parse(&GOOD.replace("r = 8", "r = 8\nrank = 4")).unwrap_err();
        assert!(e.contains("rank") && e.contains("line 8"), "{e}");
        let e = FinetuneConfig::parse(&GOOD.replace("lr = 2e-4", "lr = 0")).unwrap_err();
        assert!(e.contains("[train] lr"), "{e}");
        let e = FinetuneConfig::parse(&GOOD.replace("\"v_proj\"", "\"w_proj\"")).unwrap_err();
        assert!(e.contains("w_proj"), "{e}");
    }

    /// The examples' configs parse, so a renamed key shows here and not only when someone
    /// runs an example; and a negative rpo_alpha is refused by name.
    #[test]
    fn example_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut parsed = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue; // examples/pipeline.sh, shared by the examples' run.sh
            }
            for f in std::fs::read_dir(dir).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    FinetuneConfig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    parsed += 1;
                }
            }
        }
        assert!(
            parsed >= 4,
            "only {parsed} example configs under {}",
            root.display()
        );
        let e = FinetuneConfig::parse(&format!("{GOOD}[dpo]\nrpo_alpha = -1\n")).unwrap_err();
        assert!(e.contains("rpo_alpha"), "{e}");
    }

    #[test]
    fn diff_lists_changed_keys() {
        let a = FinetuneConfig::parse(GOOD).unwrap();
        let b = FinetuneConfig::parse(&GOOD.replace("lr = 2e-4", "lr = 1e-4")).unwrap();
        let d = b.diff(&a);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("[train] lr 0.0002"), "{d:?}");
    }
}

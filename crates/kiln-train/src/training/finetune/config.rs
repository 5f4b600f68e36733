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
//! steps = 300
//! batch_size = 4
//! lr = 2e-4
//! ```

use std::path::{Path, PathBuf};

use kiln_model::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::dpo_loss::DpoSettings;
use crate::data::sft::TrainOn;
use crate::error::Result;
use crate::training::config_error::{parse_config, read_config};
use crate::training::settings::{TrainSection, TrainSettings, FINE_TUNING};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinetuneConfig {
    pub model: FtModelSection,
    pub data: FtDataSection,
    pub lora: FtLoraSection,
    /// The same `[train]` keys as `kiln train`'s, with fine-tuning's defaults.
    pub train: TrainSettings,
    /// DPO's settings (`kiln finetune dpo`); defaults when absent.
    pub dpo: DpoSettings,
}

/// The file as written, before `[train]` gets fine-tuning's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinetuneConfig {
    model: FtModelSection,
    data: FtDataSection,
    lora: FtLoraSection,
    train: TrainSection,
    #[serde(default)]
    dpo: DpoSettings,
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

fn max_len() -> usize {
    512
}
fn bucket_window() -> usize {
    8
}

impl FinetuneConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let mut cfg = read_config(path, Self::parse)?;
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
        let (raw, train) = parse_config::<RawFinetuneConfig>(text, &FINE_TUNING, |r| &r.train)?;
        let cfg = Self {
            model: raw.model,
            data: raw.data,
            lora: raw.lora,
            train,
            dpo: raw.dpo,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
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

    /// The cosine's floor (lr / 10 when the file leaves it out).
    pub fn min_lr(&self) -> f64 {
        self.train.min_lr()
    }

    /// `[train] lr 0.0002 in the checkpoint, 0.0001 now; ...`: every key that differs
    /// between the config a run was started with and this one.
    pub fn diff(&self, saved: &FinetuneConfig) -> Vec<String> {
        match (serde_json::to_value(saved), serde_json::to_value(self)) {
            (Ok(then), Ok(now)) => crate::training::run::config_diff(&then, &now),
            _ => vec!["the config".into()],
        }
    }
}

/// A fine-tuning checkpoint's config in today's form: older kilns wrote `[train] max_steps`
/// and left a default `min_lr` out (null); both read as they mean now.
pub fn upgrade_saved(saved: &serde_json::Value) -> Option<serde_json::Value> {
    let mut v = saved.clone();
    if let Some(train) = v.get_mut("train").and_then(|t| t.as_object_mut()) {
        for (old, new) in crate::training::settings::RENAMED_KEYS {
            if let Some(x) = train.remove(old) {
                train.entry(new).or_insert(x);
            }
        }
        if train.get("min_lr").is_some_and(|m| m.is_null()) {
            let divisor = crate::training::settings::FINE_TUNING.min_lr_divisor;
            train.insert("min_lr".into(), serde_json::json!({ "lr_over": divisor }));
        }
    }
    Some(v)
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
steps = 300
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

    /// A checkpoint of an older kiln (`max_steps`, a default `min_lr` left null) reads as the
    /// same config today, so such runs still resume.
    #[test]
    fn an_older_checkpoints_config_reads_as_todays() {
        let now = serde_json::to_value(FinetuneConfig::parse(GOOD).unwrap()).unwrap();
        let mut old = now.clone();
        let train = old["train"].as_object_mut().unwrap();
        let steps = train.remove("steps").unwrap();
        train.insert("max_steps".into(), steps);
        train.insert("min_lr".into(), serde_json::Value::Null);
        assert_ne!(old, now);
        assert_eq!(upgrade_saved(&old), Some(now));
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

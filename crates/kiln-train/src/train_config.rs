//! `kiln train --config FILE.toml`: the model shape and switches, the data directory and the
//! optimisation settings, parsed strictly (unknown keys and option values are errors that
//! name the line and the allowed values).

use std::path::{Path, PathBuf};

use kiln_model::config::{
    BlockKinds, MlpKind, ModelConfig, NormKind, PositionKind, RopeConfig, RopeStyle,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub train: TrainSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads for grouped-query attention; `n_head` when absent.
    pub n_kv_head: Option<usize>,
    pub d_model: usize,
    /// Hidden size of the MLP; 4 · d_model when absent.
    pub ffn: Option<usize>,
    pub context: usize,
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default)]
    pub position: PositionKind,
    #[serde(default)]
    pub mlp: MlpKind,
    #[serde(default = "yes")]
    pub tied_embeddings: bool,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "rope_theta")]
    pub rope_theta: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A directory written by `kiln data prepare`, relative to the config file.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub steps: u64,
    pub batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    pub lr: f64,
    pub min_lr: f64,
    #[serde(default)]
    pub warmup: u64,
    /// Steps over which the cosine decays to `min_lr`; `steps` when absent.
    pub decay_steps: Option<u64>,
    #[serde(default = "weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "beta1")]
    pub beta1: f64,
    #[serde(default = "beta2")]
    pub beta2: f64,
    #[serde(default = "grad_clip")]
    pub grad_clip: f64,
    #[serde(default = "eval_every")]
    pub eval_every: u64,
    #[serde(default = "eval_batches")]
    pub eval_batches: usize,
    #[serde(default = "checkpoint_every")]
    pub checkpoint_every: u64,
    /// Checkpoints kept; older ones are deleted after a newer one is safely on disk.
    #[serde(default = "keep")]
    pub keep: usize,
    #[serde(default = "seed")]
    pub seed: u64,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn rope_theta() -> f32 {
    10_000.0
}
fn weight_decay() -> f64 {
    0.1
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.99
}
fn grad_clip() -> f64 {
    1.0
}
fn eval_every() -> u64 {
    250
}
fn eval_batches() -> usize {
    20
}
fn checkpoint_every() -> u64 {
    500
}
fn keep() -> usize {
    2
}
fn seed() -> u64 {
    1337
}

impl TrainConfig {
    /// Reads and validates `path`; the data directory is resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, "read", e))?;
        let mut cfg = Self::parse(&text).map_err(|msg| TrainError::Config {
            path: path.into(),
            msg,
        })?;
        if cfg.data.dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            cfg.data.dir = base.join(&cfg.data.dir);
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
        let (m, t) = (&self.model, &self.train);
        if m.dropout != 0.0 {
            return Err(format!(
                "[model] dropout = {}: only 0 is supported so far",
                m.dropout
            ));
        }
        let kv = m.n_kv_head.unwrap_or(m.n_head);
        if m.n_head == 0 || kv == 0 || m.n_head % kv != 0 {
            return Err(format!(
                "[model] n_head ({}) must be a positive multiple of n_kv_head ({kv})",
                m.n_head
            ));
        }
        if m.d_model % m.n_head != 0 || (m.d_model / m.n_head) % 2 != 0 {
            return Err(format!(
                "[model] d_model ({}) must split into n_head ({}) heads of even size",
                m.d_model, m.n_head
            ));
        }
        if m.n_layer == 0 || m.context < 2 {
            return Err("[model] n_layer must be >= 1 and context >= 2".into());
        }
        if t.steps == 0 || t.batch_size == 0 || t.grad_accum == 0 {
            return Err("[train] steps, batch_size and grad_accum must be >= 1".into());
        }
        let lr_ok = t.lr > 0.0 && (0.0..=t.lr).contains(&t.min_lr); // also rejects NaN
        if !lr_ok {
            return Err(format!(
                "[train] need 0 <= min_lr ({}) <= lr ({}) and lr > 0",
                t.min_lr, t.lr
            ));
        }
        Ok(())
    }

    /// The runtime model configuration for a vocabulary of `vocab` tokens.
    pub fn model_config(&self, vocab: usize) -> ModelConfig {
        let m = &self.model;
        ModelConfig {
            architecture: "llama".into(),
            vocab_size: vocab,
            hidden_size: m.d_model,
            intermediate_size: m.ffn.unwrap_or(4 * m.d_model),
            num_layers: m.n_layer,
            num_heads: m.n_head,
            num_kv_heads: m.n_kv_head.unwrap_or(m.n_head),
            head_dim: m.d_model / m.n_head,
            rms_norm_eps: 1e-5,
            rope: RopeConfig {
                theta: m.rope_theta,
                style: RopeStyle::Halves,
                scaling: None,
            },
            max_position_embeddings: m.context,
            tie_word_embeddings: m.tied_embeddings,
            attention_bias: false,
            bos_token_id: None,
            eos_token_ids: vec![],
            kinds: BlockKinds {
                norm: m.norm,
                position: m.position,
                mlp: m.mlp,
            },
        }
    }
}

/// `line N, key `k` in [table]: what is wrong`, in words a user of the config knows (a number,
/// a whole number) rather than Rust's type names.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim_end().replace('\n', "; ");
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected usize", "expected a whole number >= 0"),
    ] {
        if msg.ends_with(rust) {
            msg = format!("{}{words}", &msg[..msg.len() - rust.len()]);
        }
    }
    let Some(span) = e.span() else {
        return msg;
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count();
    let table = text.lines().take(line + 1).filter_map(table_header).last();
    let here = text.lines().nth(line).unwrap_or("");
    let at = match (table_header(here), key_of(here), table) {
        (Some(t), _, _) => format!("line {}, in [{t}]", line + 1),
        (None, Some(k), Some(t)) => format!("line {}, key `{k}` in [{t}]", line + 1),
        (None, Some(k), None) => format!("line {}, key `{k}`", line + 1),
        (None, None, _) => format!("line {}", line + 1),
    };
    format!("{at}: {msg}")
}

/// `name` for a `[name]` or `[[name]]` line.
fn table_header(line: &str) -> Option<&str> {
    let l = line.trim();
    let (inner, _) = l.strip_prefix('[')?.split_once(']')?;
    Some(inner.trim_start_matches('[').trim()).filter(|n| !n.is_empty())
}

/// `key` for a `key = value` line (bare or dotted keys).
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
n_layer = 2
n_head = 2
d_model = 16
context = 8
norm = "layernorm"

[data]
dir = "data"

[train]
steps = 10
batch_size = 2
lr = 1e-3
min_lr = 1e-4
"#;

    #[test]
    fn parses_with_defaults() {
        let c = TrainConfig::parse(GOOD).unwrap();
        assert_eq!(c.model.norm, NormKind::LayerNorm);
        assert_eq!(c.model.position, PositionKind::Rope);
        assert_eq!(c.train.grad_accum, 1);
        assert_eq!(c.model_config(65).intermediate_size, 64);
    }

    #[test]
    fn errors_name_the_line_key_and_allowed_values() {
        let bad = GOOD.replace("norm = \"layernorm\"", "norm = \"batchnorm\"");
        let e = TrainConfig::parse(&bad).unwrap_err();
        assert!(e.starts_with("line 7, key `norm` in [model]:"), "{e}");
        assert!(e.contains("rmsnorm") && e.contains("layernorm"), "{e}");
        let e = TrainConfig::parse(&GOOD.replace("lr = 1e-3", "lr = \"fast\"")).unwrap_err();
        assert!(e.starts_with("line 15, key `lr` in [train]:"), "{e}");
        assert!(e.ends_with("expected a number"), "{e}");
        let e = TrainConfig::parse(&GOOD.replace("min_lr = 1e-4", "")).unwrap_err();
        assert!(
            e.starts_with("line 12, in [train]:") && e.contains("min_lr"),
            "{e}"
        );
        let e = TrainConfig::parse(&GOOD.replace("steps = 10", "stepz = 10")).unwrap_err();
        assert!(e.contains("stepz"), "{e}");
        let e = TrainConfig::parse("[model\nn_layer = 1").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = TrainConfig::parse(&GOOD.replace("n_head = 2", "n_head = 3")).unwrap_err();
        assert!(e.contains("n_head"), "{e}");
    }
}

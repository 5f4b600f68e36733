//! `kiln train --config FILE.toml`: the model shape and switches, the data directory and the
//! optimisation settings, parsed strictly (unknown keys and option values are errors that
//! name the line and the allowed values).

use std::path::{Path, PathBuf};

use kiln_model::config::{
    BlockKinds, MlpKind, ModelConfig, NormKind, PositionKind, RopeConfig, RopeStyle,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::training::config_error::{parse_config, read_config};
use crate::training::settings::{TrainSection, TrainSettings, PRETRAINING};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub train: TrainSettings,
    /// The `kiln ...` commands the file's header comments give, for the error when the data
    /// is missing (the presets name the two that prepare theirs).
    #[serde(skip)]
    pub prepare_commands: Vec<String>,
}

/// The file as written, before `[train]` gets pretraining's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrainConfig {
    model: ModelSection,
    data: DataSection,
    train: TrainSection,
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

fn yes() -> bool {
    true
}
fn rope_theta() -> f32 {
    10_000.0
}

impl TrainConfig {
    /// Reads and validates `path`; the data directory is resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let mut cfg = read_config(path, Self::parse)?;
        if cfg.data.dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            cfg.data.dir = base.join(&cfg.data.dir);
        }
        Ok(cfg)
    }

    /// Parses TOML text; the error is one line with the position and the offending key.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let (raw, train) = parse_config::<RawTrainConfig>(text, &PRETRAINING, |r| &r.train)?;
        let cfg = Self {
            model: raw.model,
            data: raw.data,
            train,
            prepare_commands: header_commands(text),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The error for data that is not there: which commands make it.
    pub fn missing_data(&self, e: TrainError) -> TrainError {
        let TrainError::MissingFile { path } = &e else {
            return e;
        };
        let how = match self.prepare_commands.as_slice() {
            [] => format!(
                "prepare it with `kiln tokenizer train` and then `kiln data prepare --out {}`",
                self.data.dir.display()
            ),
            cmds => format!(
                "the config's header gives the commands that make it: {}",
                cmds.join(" && ")
            ),
        };
        TrainError::MissingData {
            path: path.clone(),
            how,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.model;
        if m.dropout != 0.0 {
            return Err(format!(
                "[model] dropout = {}: only 0 is supported so far",
                m.dropout
            ));
        }
        let kv = m.n_kv_head.unwrap_or(m.n_head);
        if m.n_head == 0 || kv == 0 || !m.n_head.is_multiple_of(kv) {
            return Err(format!(
                "[model] n_head ({}) must be a positive multiple of n_kv_head ({kv})",
                m.n_head
            ));
        }
        if !m.d_model.is_multiple_of(m.n_head) || !(m.d_model / m.n_head).is_multiple_of(2) {
            return Err(format!(
                "[model] d_model ({}) must split into n_head ({}) heads of even size",
                m.d_model, m.n_head
            ));
        }
        if m.n_layer == 0 || m.context < 2 {
            return Err("[model] n_layer must be >= 1 and context >= 2".into());
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

/// The `kiln ...` command lines of the comment block at the top of a config file.
fn header_commands(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches('#')
                .trim()
                .strip_prefix("kiln ")
        })
        .map(|c| format!("kiln {c}"))
        .collect()
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

    #[test]
    fn missing_data_names_the_commands_that_make_it() {
        let header = "# Data, from the repository root:\n#   kiln tokenizer train --kind char --out t.json\n#   kiln data prepare -t t.json -o data\n# then: kiln train --config this.toml\n";
        let c = TrainConfig::parse(&format!("{header}{GOOD}")).unwrap();
        let missing = TrainError::MissingFile {
            path: "data/manifest.json".into(),
        };
        let e = c.missing_data(missing).to_string();
        assert!(e.starts_with("data/manifest.json: no such file"), "{e}");
        assert!(
            e.contains("kiln tokenizer train --kind char --out t.json && kiln data prepare -t t.json -o data"),
            "{e}"
        );
        assert!(!e.contains("then:"), "{e}");
        let bare = TrainConfig::parse(GOOD).unwrap();
        let missing = TrainError::MissingFile {
            path: "data/manifest.json".into(),
        };
        assert!(bare
            .missing_data(missing)
            .to_string()
            .contains("kiln data prepare"));
    }
}

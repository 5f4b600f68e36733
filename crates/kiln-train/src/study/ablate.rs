//! `kiln train ablate`: the cartesian product of `--vary KEY=V1,V2,…` settings applied to one
//! run config, each variant trained with the same seed and data, summarised as a markdown
//! table and a JSON file of final val loss, tokens/s and parameter count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::study::{self, Progress, StudyOptions};
use crate::training::flops::run_model_config;
use crate::training::pretrain::config::TrainConfig;

/// How a key's values are read.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Choice(&'static [&'static str]),
    Whole,
    Number,
    Bool,
}

/// A setting `--vary` may change: its config section, key and value kind.
struct Knob {
    section: &'static str,
    key: &'static str,
    kind: Kind,
}

const fn knob(section: &'static str, key: &'static str, kind: Kind) -> Knob {
    Knob { section, key, kind }
}

/// Everything `--vary` accepts. The switches first; then model shape and optimisation keys,
/// which go through the same validation as a config file.
const KNOBS: &[Knob] = &[
    knob("model", "norm", Kind::Choice(&["layernorm", "rmsnorm"])),
    knob("model", "position", Kind::Choice(&["learned", "rope"])),
    knob("model", "mlp", Kind::Choice(&["gelu", "swiglu"])),
    knob("model", "n_layer", Kind::Whole),
    knob("model", "n_head", Kind::Whole),
    knob("model", "n_kv_head", Kind::Whole),
    knob("model", "d_model", Kind::Whole),
    knob("model", "ffn", Kind::Whole),
    knob("model", "context", Kind::Whole),
    knob("model", "tied_embeddings", Kind::Bool),
    knob("model", "rope_theta", Kind::Number),
    knob("train", "lr", Kind::Number),
    knob("train", "min_lr", Kind::Number),
    knob("train", "warmup", Kind::Whole),
    knob("train", "weight_decay", Kind::Number),
    knob("train", "batch_size", Kind::Whole),
    knob("train", "grad_accum", Kind::Whole),
    knob("train", "grad_clip", Kind::Number),
    knob("train", "beta1", Kind::Number),
    knob("train", "beta2", Kind::Number),
    knob("train", "seed", Kind::Whole),
];

/// The keys `--vary` accepts, for help texts and errors.
pub fn allowed_keys() -> Vec<&'static str> {
    KNOBS.iter().map(|k| k.key).collect()
}

/// One `--vary KEY=V1,V2,…`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vary {
    pub key: String,
    pub values: Vec<String>,
}

impl std::str::FromStr for Vary {
    type Err = TrainError;

    /// Parses and checks `KEY=V1,V2,…`: a known key and values of its kind.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |msg: String| Err(TrainError::InvalidArgument(format!("--vary {s}: {msg}")));
        let Some((key, values)) = s.split_once('=') else {
            return bad("expected KEY=V1,V2,... (e.g. norm=layernorm,rmsnorm)".into());
        };
        let key = key.trim();
        let Some(k) = KNOBS.iter().find(|k| k.key == key) else {
            return bad(format!(
                "unknown key `{key}`; allowed: {}",
                allowed_keys().join(", ")
            ));
        };
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(|v| v.is_empty()) {
            return bad("empty value; list the values separated by commas".into());
        }
        for (i, v) in values.iter().enumerate() {
            value_of(k, v)
                .map_err(|msg| TrainError::InvalidArgument(format!("--vary {s}: {msg}")))?;
            if values[..i].contains(v) {
                return bad(format!("value `{v}` is listed twice"));
            }
        }
        Ok(Self {
            key: key.into(),
            values,
        })
    }
}

/// A value as TOML, checked against the key's kind; the error lists what is allowed.
fn value_of(k: &Knob, v: &str) -> std::result::Result<toml::Value, String> {
    let key = k.key;
    match k.kind {
        Kind::Choice(allowed) => {
            if allowed.contains(&v) {
                Ok(toml::Value::String(v.into()))
            } else {
                Err(format!(
                    "unknown value `{v}` for {key}; allowed: {}",
                    allowed.join(", ")
                ))
            }
        }
        Kind::Whole => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(toml::Value::Integer)
            .ok_or(format!("{key} takes a whole number >= 0, not `{v}`")),
        Kind::Number => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(toml::Value::Float)
            .ok_or(format!("{key} takes a number, not `{v}`")),
        Kind::Bool => v
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("{key} takes true or false, not `{v}`")),
    }
}

/// One variant: its settings, in `--vary` order, and the config they give.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub settings: Vec<(String, String)>,
    pub config: TrainConfig,
}

/// The cartesian product of `vary` over `base` (the first `--vary` varies slowest), each
/// variant validated like a config file.
pub fn variants(base: &TrainConfig, vary: &[Vary]) -> Result<Vec<Variant>> {
    if vary.is_empty() {
        return Err(TrainError::InvalidArgument(
            "nothing to vary: give at least one --vary KEY=V1,V2,...".into(),
        ));
    }
    for (i, v) in vary.iter().enumerate() {
        if vary[..i].iter().any(|w| w.key == v.key) {
            return Err(TrainError::InvalidArgument(format!(
                "--vary {}: the key is given twice; list all its values in one --vary",
                v.key
            )));
        }
    }
    let mut combos: Vec<Vec<(String, String)>> = vec![vec![]];
    for v in vary {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                v.values.iter().map(move |val| {
                    let mut c = c.clone();
                    c.push((v.key.clone(), val.clone()));
                    c
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|settings| {
            let label = settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let config = apply(base, &settings, &label)?;
            let name = study::dir_name(
                &settings
                    .iter()
                    .map(|(k, v)| format!("{k}-{v}"))
                    .collect::<Vec<_>>()
                    .join("."),
            );
            Ok(Variant {
                name,
                settings,
                config,
            })
        })
        .collect()
}

/// `base` with `settings` applied (through TOML, so the file's validation applies).
fn apply(base: &TrainConfig, settings: &[(String, String)], label: &str) -> Result<TrainConfig> {
    let bad = |msg: String| TrainError::InvalidArgument(format!("variant {label}: {msg}"));
    let mut doc = toml::Value::try_from(base).map_err(|e| bad(e.to_string()))?;
    for (key, value) in settings {
        let Some(k) = KNOBS.iter().find(|k| k.key == key) else {
            return Err(bad(format!("unknown key `{key}`")));
        };
        let v = value_of(k, value).map_err(bad)?;
        let section = doc
            .get_mut(k.section)
            .and_then(|s| s.as_table_mut())
            .ok_or_else(|| bad(format!("no [{}] section", k.section)))?;
        section.insert(key.clone(), v);
    }
    let text = toml::to_string(&doc).map_err(|e| bad(e.to_string()))?;
    TrainConfig::parse(&text).map_err(bad)
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct AblationRow {
    pub variant: String,
    pub settings: BTreeMap<String, String>,
    pub run_dir: PathBuf,
    pub params: u64,
    pub steps: u64,
    /// Mean loss on the fixed validation batches after the last step.
    pub val_loss: Option<f64>,
    /// The same on fixed training batches.
    pub train_loss: Option<f64>,
    /// Loss of the last training batch.
    pub final_batch_loss: f64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AblationReport {
    pub vary: Vec<Vary>,
    pub seed: u64,
    pub steps: u64,
    pub data_dir: PathBuf,
    pub rows: Vec<AblationRow>,
    /// The variant Ctrl-C stopped, when it did; it and later variants have no row.
    pub interrupted: Option<String>,
}

/// Trains every variant into `opts.out/<variant>/` and writes `opts.out/ablation.md` and
/// `opts.out/ablation.json` (also after Ctrl-C, with the variants finished so far).
pub fn run_ablation(
    base: &TrainConfig,
    vary: &[Vary],
    opts: &StudyOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<AblationReport> {
    let base = study::with_steps(base, opts.steps)?;
    let list = variants(&base, vary)?;
    let runs: Vec<(String, TrainConfig)> = list
        .iter()
        .map(|v| (v.name.clone(), v.config.clone()))
        .collect();
    let mut params = vec![];
    for v in &list {
        params.push(kiln_model::params::parameter_count(&run_model_config(&v.config)?) as u64);
    }
    let (done, interrupted) = study::run_variants(&runs, opts, progress)?;
    let rows = list
        .iter()
        .zip(params)
        .zip(done)
        .map(|((v, params), run)| AblationRow {
            variant: v
                .settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            settings: v.settings.iter().cloned().collect(),
            run_dir: run.report.run_dir.clone(),
            params,
            steps: run.report.steps,
            val_loss: run.report.val_loss,
            train_loss: run.train_eval_loss,
            final_batch_loss: run.report.final_loss,
            tokens_per_s: run.report.tokens_per_s,
        })
        .collect();
    let report = AblationReport {
        vary: vary.to_vec(),
        seed: base.train.seed,
        steps: base.train.steps,
        data_dir: base.data.dir.clone(),
        rows,
        interrupted,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    study::write_output(&opts.out, "ablation.json", &(json + "\n"))?;
    study::write_output(&opts.out, "ablation.md", &markdown(&report))?;
    Ok(report)
}

/// The report as markdown: a heading line, the conditions, and the table (the best val loss
/// in bold).
pub fn markdown(r: &AblationReport) -> String {
    let best = r
        .rows
        .iter()
        .filter_map(|row| row.val_loss)
        .min_by(f64::total_cmp);
    let mut s = format!(
        "# Ablation\n\nSame seed ({}) and data ({}), {} steps per variant.\n\n\
         | variant | val loss | train loss | tokens/s | params |\n\
         |---|---:|---:|---:|---:|\n",
        r.seed,
        r.data_dir.display(),
        r.steps
    );
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for row in &r.rows {
        let val = match (row.val_loss, best) {
            (Some(v), Some(b)) if v == b => format!("**{v:.4}**"),
            (v, _) => num(v),
        };
        s.push_str(&format!(
            "| {} | {val} | {} | {:.0} | {} |\n",
            row.variant,
            num(row.train_loss),
            row.tokens_per_s,
            row.params
        ));
    }
    if let Some(name) = &r.interrupted {
        s.push_str(&format!(
            "\nInterrupted (Ctrl-C) during `{name}`; the variants from there on are missing.\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\nn_layer = 2\nn_head = 2\nd_model = 16\ncontext = 8\n\
                        [data]\ndir = \"d\"\n[train]\nsteps = 10\nbatch_size = 2\nlr = 1e-3\nmin_lr = 1e-4\n";

    fn vary(s: &str) -> Vary {
        s.parse().unwrap()
    }

    #[test]
    fn cartesian_product_in_order() {
        let base = TrainConfig::parse(BASE).unwrap();
        let v = variants(
            &base,
            &[
                vary("norm=layernorm,rmsnorm"),
                vary("position=learned,rope"),
                vary("lr=0.002"),
            ],
        )
        .unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "norm-layernorm.position-learned.lr-0.002",
                "norm-layernorm.position-rope.lr-0.002",
                "norm-rmsnorm.position-learned.lr-0.002",
                "norm-rmsnorm.position-rope.lr-0.002",
            ]
        );
        use kiln_model::config::{NormKind, PositionKind};
        assert_eq!(v[1].config.model.norm, NormKind::LayerNorm);
        assert_eq!(v[1].config.model.position, PositionKind::Rope);
        assert_eq!(v[3].config.train.lr, 0.002);
        // Everything not varied stays.
        assert_eq!(v[2].config.train.seed, base.train.seed);
        assert_eq!(v[2].config.data, base.data);
    }

    #[test]
    fn bad_keys_and_values_list_the_allowed_ones() {
        let e = "norm=batchnorm".parse::<Vary>().unwrap_err().to_string();
        assert!(
            e.contains("batchnorm") && e.contains("layernorm, rmsnorm"),
            "{e}"
        );
        let e = "act=relu".parse::<Vary>().unwrap_err().to_string();
        assert!(
            e.contains("unknown key `act`") && e.contains("norm, position, mlp"),
            "{e}"
        );
        let e = "d_model=big".parse::<Vary>().unwrap_err().to_string();
        assert!(e.contains("whole number"), "{e}");
        let e = "norm".parse::<Vary>().unwrap_err().to_string();
        assert!(e.contains("KEY=V1,V2"), "{e}");
        let e = "mlp=gelu,gelu".parse::<Vary>().unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let base = TrainConfig::parse(BASE).unwrap();
        // A value the kind allows but the config rules do not: 3 heads do not split 16.
        let e = variants(&base, &[vary("n_head=3")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_head=3") && e.contains("d_model"), "{e}");
        let e = variants(&base, &[]).unwrap_err().to_string();
        assert!(e.contains("--vary"), "{e}");
        let e = variants(&base, &[vary("mlp=gelu"), vary("mlp=swiglu")]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}

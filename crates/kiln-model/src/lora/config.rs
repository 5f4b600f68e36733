//! `LoraConfig` and its `adapter_config.json` in PEFT's spelling. PEFT writes every field
//! of its `LoraConfig` dataclass (about forty in PEFT 0.21); kiln writes the long-standing
//! ones, which every PEFT since 0.9 and vLLM read, and on reading ignores keys it does not
//! know. Keys that would change the math kiln applies (DoRA, biases, per-module ranks, extra
//! trainable modules) are rejected rather than silently dropped.

use serde_json::{json, Map, Value};

use super::target::LoraModule;
use crate::error::{ModelError, Result};

/// Why a config is wrong, before it becomes a [`ModelError::LoraConfig`].
type Why<T> = std::result::Result<T, String>;

/// What a LoRA adapter is: its rank, scaling and the modules it adapts (PEFT's names).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    /// PEFT's `lora_alpha`.
    pub alpha: f64,
    /// PEFT's `lora_dropout`: dropout on the adapter's input while training.
    pub dropout: f64,
    /// Module names as PEFT lists them (`q_proj`, `v_proj`, ...).
    pub target_modules: Vec<String>,
    /// rsLoRA (Kalajdzievski 2023): scale by alpha/√r so larger ranks keep learning.
    pub use_rslora: bool,
    pub base_model_name_or_path: Option<String>,
}

impl LoraConfig {
    /// The factor the adapter's output `B·A·x` is multiplied by.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// The target modules as kiln's enum, in the canonical order (q, k, v, o, gate, up,
    /// down); an error names any module kiln cannot adapt.
    pub fn modules(&self) -> Result<Vec<LoraModule>> {
        self.modules_or_why().map_err(ModelError::LoraConfig)
    }

    fn modules_or_why(&self) -> Why<Vec<LoraModule>> {
        let mut out = Vec::with_capacity(self.target_modules.len());
        for name in &self.target_modules {
            match LoraModule::from_name(name) {
                Some(m) => out.push(m),
                None => {
                    return Err(format!(
                        "target module `{name}` is not one kiln can adapt (expected some of {})",
                        all_module_names()
                    ))
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Checks the values a training run or a loaded file could get wrong.
    pub fn validate(&self) -> Result<()> {
        self.why_invalid().map_err(ModelError::LoraConfig)
    }

    fn why_invalid(&self) -> Why<()> {
        if self.r == 0 {
            return Err("r must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!("lora_alpha must be positive, got {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "lora_dropout must be in [0, 1), got {}",
                self.dropout
            ));
        }
        if self.target_modules.is_empty() {
            return Err("target_modules is empty".into());
        }
        self.modules_or_why().map(|_| ())
    }

    /// `adapter_config.json` as PEFT writes it for a causal LM.
    pub fn to_peft_json(&self) -> Value {
        // PEFT stores target_modules as a set; a sorted list keeps kiln's files reproducible.
        let mut targets = self.target_modules.clone();
        targets.sort();
        targets.dedup();
        json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.r,
            "lora_alpha": number(self.alpha),
            "lora_dropout": self.dropout,
            "target_modules": targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": self.use_rslora,
            "use_dora": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "base_model_name_or_path": self.base_model_name_or_path,
            "revision": null,
        })
    }

    /// Reads a parsed `adapter_config.json`; the error says which key is wrong and why.
    pub fn from_peft_json(v: &Value) -> Result<Self> {
        Self::from_peft_json_or_why(v).map_err(ModelError::LoraConfig)
    }

    fn from_peft_json_or_why(v: &Value) -> Why<Self> {
        let obj = v
            .as_object()
            .ok_or("expected a JSON object (PEFT's adapter_config.json)")?;
        match obj.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(other) => {
                return Err(format!(
                    "peft_type is \"{other}\"; kiln reads LoRA adapters (\"LORA\") only"
                ))
            }
            None => return Err("peft_type is missing (expected \"LORA\")".into()),
        }
        match obj.get("task_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "CAUSAL_LM" => {}
            Some(other) => {
                return Err(format!(
                    "task_type is {other}; kiln adapts causal LMs (\"CAUSAL_LM\")"
                ))
            }
        }
        match obj.get("bias") {
            None | Some(Value::Null) => {}
            Some(Value::String(b)) if b == "none" => {}
            Some(other) => {
                return Err(format!(
                    "bias is {other}; kiln supports adapters without trained biases (\"none\") only"
                ))
            }
        }
        reject_unsupported(obj)?;
        let r = match obj.get("r").and_then(Value::as_u64) {
            Some(r) => usize::try_from(r).map_err(|_| format!("r = {r} is too large"))?,
            None => return Err("r is missing or not a positive integer".into()),
        };
        let cfg = LoraConfig {
            r,
            // PEFT's defaults for the keys it may omit.
            alpha: optional_f64(obj, "lora_alpha", 8.0)?,
            dropout: optional_f64(obj, "lora_dropout", 0.0)?,
            target_modules: target_modules(obj)?,
            use_rslora: optional_bool(obj, "use_rslora")?,
            base_model_name_or_path: obj
                .get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        cfg.why_invalid()?;
        Ok(cfg)
    }
}

/// PEFT options whose effect kiln does not implement: each must be absent or "empty"
/// (null, false, {}, []).
const UNSUPPORTED: [(&str, &str); 10] = [
    ("fan_in_fan_out", "GPT-2-style Conv1D weights"),
    ("use_dora", "DoRA"),
    ("lora_bias", "trained LoRA biases"),
    ("use_qalora", "QALoRA"),
    ("modules_to_save", "fully trained extra modules"),
    ("rank_pattern", "per-module ranks"),
    ("alpha_pattern", "per-module alphas"),
    ("trainable_token_indices", "trainable token embeddings"),
    ("layer_replication", "layer replication"),
    ("target_parameters", "LoRA on raw parameters"),
];

fn reject_unsupported(obj: &Map<String, Value>) -> Why<()> {
    for (key, what) in UNSUPPORTED {
        let set = match obj.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(format!(
                "{key} = {} asks for {what}, which kiln does not support",
                obj[key]
            ));
        }
    }
    Ok(())
}

fn target_modules(obj: &Map<String, Value>) -> Why<Vec<String>> {
    match obj.get("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("target_modules has a non-string entry {x}"))
            })
            .collect(),
        // PEFT also takes a regex over full module paths, or "all-linear"; those need the
        // model to resolve, so kiln asks for the plain list PEFT writes for most adapters.
        Some(Value::String(s)) => Err(format!(
            "target_modules is the pattern \"{s}\"; kiln needs a list of module names ({})",
            all_module_names()
        )),
        Some(other) => Err(format!("target_modules is {other}, expected a list")),
        None => Err("target_modules is missing".into()),
    }
}

fn optional_f64(obj: &Map<String, Value>, key: &str, default: f64) -> Why<f64> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("{key} is {v}, expected a number")),
    }
}

fn optional_bool(obj: &Map<String, Value>, key: &str) -> Why<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{key} is {v}, expected true or false")),
    }
}

/// An integral alpha as a JSON integer, as PEFT writes `lora_alpha = 16`.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn all_module_names() -> String {
    LoraModule::ALL.map(LoraModule::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoraConfig {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: vec!["v_proj".into(), "q_proj".into()],
            use_rslora: false,
            base_model_name_or_path: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
        }
    }

    #[test]
    fn scaling_is_alpha_over_r_or_over_sqrt_r() {
        let c = config();
        assert_eq!(c.scaling(), 2.0);
        let rs = LoraConfig {
            use_rslora: true,
            r: 16,
            ..c
        };
        assert_eq!(rs.scaling(), 4.0);
    }

    #[test]
    fn writes_peft_field_names_and_reads_them_back() {
        let c = config();
        let j = c.to_peft_json();
        assert_eq!(j["peft_type"], "LORA");
        assert_eq!(j["task_type"], "CAUSAL_LM");
        assert_eq!(j["r"], 8);
        assert!(
            j["lora_alpha"].is_u64(),
            "PEFT writes an integral alpha as an int"
        );
        assert_eq!(j["lora_alpha"], 16);
        assert_eq!(j["lora_dropout"], 0.05);
        assert_eq!(j["bias"], "none");
        assert_eq!(j["target_modules"], json!(["q_proj", "v_proj"]));
        for key in [
            "fan_in_fan_out",
            "use_rslora",
            "use_dora",
            "inference_mode",
            "init_lora_weights",
            "modules_to_save",
            "layers_to_transform",
            "layers_pattern",
            "rank_pattern",
            "alpha_pattern",
            "base_model_name_or_path",
            "revision",
        ] {
            assert!(j.get(key).is_some(), "{key} missing");
        }
        let back = LoraConfig::from_peft_json(&j).unwrap();
        assert_eq!(
            back.target_modules,
            vec!["q_proj".to_string(), "v_proj".into()]
        );
        assert_eq!(
            back,
            LoraConfig {
                target_modules: back.target_modules.clone(),
                ..c
            }
        );
    }

    /// What PEFT 0.21.2's `save_pretrained` wrote for r=4, alpha=8 on q/v/down (abridged
    /// only by dropping keys that are null): extra keys are ignored.
    #[test]
    fn reads_a_real_peft_config() {
        let j: Value = serde_json::from_str(
            r#"{"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": null,
            "bias": "none", "ensure_weight_tying": false, "fan_in_fan_out": false,
            "inference_mode": true, "init_lora_weights": true, "loftq_config": {},
            "lora_alpha": 8, "lora_bias": false, "lora_dropout": 0.05,
            "megatron_core": "megatron.core", "peft_type": "LORA", "peft_version": "0.21.2",
            "qalora_group_size": 16, "r": 4, "rank_pattern": {}, "revision": null,
            "target_modules": ["v_proj", "down_proj", "q_proj"], "task_type": "CAUSAL_LM",
            "use_dora": false, "use_qalora": false, "use_rslora": false}"#,
        )
        .unwrap();
        let c = LoraConfig::from_peft_json(&j).unwrap();
        assert_eq!((c.r, c.alpha, c.dropout), (4, 8.0, 0.05));
        assert_eq!(
            c.modules().unwrap(),
            vec![LoraModule::QProj, LoraModule::VProj, LoraModule::DownProj]
        );
    }

    #[test]
    fn rejects_what_kiln_cannot_apply() {
        let base = config().to_peft_json();
        let with = |key: &str, v: Value| {
            let mut j = base.clone();
            j[key] = v;
            LoraConfig::from_peft_json(&j).unwrap_err().to_string()
        };
        assert!(with("peft_type", json!("IA3")).contains("\"IA3\""));
        assert!(with("bias", json!("lora_only")).contains("bias"));
        assert!(with("use_dora", json!(true)).contains("DoRA"));
        assert!(with("rank_pattern", json!({"q_proj": 4})).contains("per-module ranks"));
        assert!(with("modules_to_save", json!(["lm_head"])).contains("modules_to_save"));
        assert!(with("target_modules", json!("all-linear")).contains("pattern"));
        assert!(with("target_modules", json!(["qkv_proj"])).contains("`qkv_proj`"));
        assert!(with("r", json!(0)).contains("r must be"));
        assert!(with("r", json!(-3)).contains("r is missing"));
        assert!(with("lora_dropout", json!(1.5)).contains("lora_dropout"));
        let mut j = base.clone();
        j.as_object_mut().unwrap().remove("peft_type");
        let e = LoraConfig::from_peft_json(&j).unwrap_err().to_string();
        assert!(e.contains("peft_type is missing"), "{e}");
    }
}

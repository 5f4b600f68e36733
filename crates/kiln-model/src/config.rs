//! Model configuration: a serde mirror of Hugging Face `config.json` ([`HfLlamaConfig`]) and
//! the runtime [`ModelConfig`] derived from it (or from GGUF metadata).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// How RoPE rotates a head: `Halves` pairs dimension i with i + d/2 (Hugging Face / NeoX);
/// `Interleaved` pairs 2i with 2i + 1 (the original Llama code, and llama.cpp's GGUF layout
/// for Llama-architecture Q/K weights, which the converter permutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RopeStyle {
    Halves,
    Interleaved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Positions divided by `factor` (Code Llama, long-context fine-tunes).
    Linear { factor: f32 },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    /// Per-frequency divisors stored in a GGUF's `rope_freqs.weight` (how llama.cpp bakes
    /// Llama 3.1 scaling into the file).
    FreqFactors(Vec<f32>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    pub theta: f32,
    pub style: RopeStyle,
    pub scaling: Option<RopeScaling>,
}

/// Normalisation before attention, before the MLP and at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    #[default]
    RmsNorm,
    /// With a bias, as GPT-2.
    LayerNorm,
}

/// How positions enter: rotary embeddings on q and k, or a learned table added to the
/// token embeddings (GPT-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionKind {
    #[default]
    Rope,
    Learned,
}

/// The feed-forward block: SwiGLU (three matrices) or GPT-2's GELU MLP (two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpKind {
    #[default]
    SwiGlu,
    Gelu,
}

/// The architecture switches of kiln's one decoder. The default is Llama's combination
/// (RMSNorm + RoPE + SwiGLU), the only one a pretrained checkpoint or GGUF file uses; the
/// others exist for training ablations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockKinds {
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default)]
    pub position: PositionKind,
    #[serde(default)]
    pub mlp: MlpKind,
}

impl BlockKinds {
    pub fn is_llama(&self) -> bool {
        *self == Self::default()
    }
}

/// The runtime configuration of a Llama-family causal LM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `llama`, `mistral`, `qwen2`: the family member, for display and checkpoint naming.
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope: RopeConfig,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on the Q, K and V projections (Qwen2).
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// Norm, position and MLP switches (Llama's unless a kiln training run chose others).
    #[serde(default)]
    pub kinds: BlockKinds,
}

impl ModelConfig {
    /// This configuration as a Hugging Face Llama `config.json`, with every field
    /// transformers' `LlamaConfig` would otherwise default differently (`head_dim`,
    /// `rms_norm_eps`, the biases, the token ids), and `kiln_kinds` for non-Llama switches.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let eos = match self.eos_token_ids.as_slice() {
            [] => serde_json::Value::Null,
            [one] => (*one).into(),
            many => many.into(),
        };
        let mut config = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope.theta, "rope_scaling": null,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings, "hidden_act": "silu",
            "attention_bias": self.attention_bias, "mlp_bias": false, "attention_dropout": 0.0,
            "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": true,
            "bos_token_id": self.bos_token_id, "eos_token_id": eos,
            // `dtype` is transformers 5's name, `torch_dtype` the 4.x one.
            "torch_dtype": "float32", "dtype": "float32"
        });
        if !self.kinds.is_llama() {
            config["kiln_kinds"] = serde_json::to_value(self.kinds).unwrap_or_default();
            if self.kinds.mlp == MlpKind::Gelu {
                config["hidden_act"] = "gelu".into();
            }
        }
        config
    }
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.num_heads == 0 || self.num_kv_heads == 0 || self.num_layers == 0 {
            return bad("num_heads, num_kv_heads and num_layers must be positive".into());
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim
            ));
        }
        Ok(())
    }
}

/// One or several token ids, as `eos_token_id` appears in HF configs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// `config.json` of a Hugging Face Llama, Mistral or Qwen2 checkpoint, read as is.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HfLlamaConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// kiln's own keys for the non-Llama switches of a training run (absent in every
    /// Hugging Face checkpoint, so those load as Llama).
    #[serde(default)]
    pub kiln_kinds: Option<BlockKinds>,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f32 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

impl HfLlamaConfig {
    pub fn into_config(self) -> Result<ModelConfig> {
        let arch = self.model_type.clone().unwrap_or_else(|| "llama".into());
        if !matches!(arch.as_str(), "llama" | "mistral" | "qwen2") {
            return Err(ModelError::UnsupportedArchitecture(arch));
        }
        let gelu = self
            .kiln_kinds
            .is_some_and(|k| k.mlp == crate::config::MlpKind::Gelu);
        if let Some(act) = &self.hidden_act {
            if act != "silu" && !(gelu && act == "gelu") {
                return Err(ModelError::Config(format!(
                    "hidden_act `{act}` is not supported (Llama-family models use silu)"
                )));
            }
        }
        let scaling = match &self.rope_scaling {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => parse_rope_scaling(v)?,
        };
        let cfg = ModelConfig {
            head_dim: self
                .head_dim
                .unwrap_or(self.hidden_size / self.num_attention_heads.max(1)),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            rms_norm_eps: self.rms_norm_eps,
            rope: RopeConfig {
                theta: self.rope_theta,
                style: RopeStyle::Halves,
                scaling,
            },
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias: self.attention_bias.unwrap_or(arch == "qwen2"),
            bos_token_id: self.bos_token_id.and_then(|b| b.to_vec().first().copied()),
            eos_token_ids: self.eos_token_id.map(|e| e.to_vec()).unwrap_or_default(),
            kinds: self.kiln_kinds.unwrap_or_default(),
            architecture: arch,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

fn parse_rope_scaling(v: &serde_json::Value) -> Result<Option<RopeScaling>> {
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        v.get(key)
            .and_then(|x| x.as_f64())
            .ok_or_else(|| ModelError::Config(format!("rope_scaling.{key} is missing")))
    };
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: num("factor")? as f32,
        })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: num("factor")? as f32,
            low_freq_factor: num("low_freq_factor")? as f32,
            high_freq_factor: num("high_freq_factor")? as f32,
            original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
        })),
        other => Err(ModelError::Config(format!(
            "rope_scaling type `{other}` is not supported (supported: linear, llama3)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_smollm2_style_config() {
        let json = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,
            "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
            "num_key_value_heads":3,"rms_norm_eps":1e-5,"rope_theta":100000,"max_position_embeddings":8192,
            "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu"}"#;
        let cfg: HfLlamaConfig = serde_json::from_str(json).unwrap();
        let cfg = cfg.into_config().unwrap();
        assert_eq!(cfg.head_dim, 64);
        assert_eq!(cfg.num_kv_heads, 3);
        assert!(cfg.tie_word_embeddings);
        assert_eq!(cfg.eos_token_ids, vec![2]);
        assert!(!cfg.attention_bias);
    }

    #[test]
    fn qwen2_gets_qkv_bias_and_llama3_scaling_parses() {
        let json = r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,
            "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192},"eos_token_id":[3,4]}"#;
        let cfg = serde_json::from_str::<HfLlamaConfig>(json)
            .unwrap()
            .into_config()
            .unwrap();
        assert!(cfg.attention_bias);
        assert_eq!(cfg.eos_token_ids, vec![3, 4]);
        assert!(matches!(cfg.rope.scaling, Some(RopeScaling::Llama3 { .. })));
    }

    #[test]
    fn rejects_unknown_architecture_and_rope_type() {
        let base = r#"{"vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2"#;
        let gpt = format!(r#"{base},"model_type":"gpt_neox"}}"#);
        let err = serde_json::from_str::<HfLlamaConfig>(&gpt)
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("gpt_neox"), "{err}");
        let yarn = format!(r#"{base},"rope_scaling":{{"type":"yarn","factor":2.0}}}}"#);
        let err = serde_json::from_str::<HfLlamaConfig>(&yarn)
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("yarn"), "{err}");
    }
}

//! Which linear layers a LoRA adapter can target, their shapes in a base model, and PEFT's
//! tensor names for them: `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`.
//! PEFT's names are the HF module path under its `base_model.model.` wrapper, with the
//! adapter's name ("default") stripped when it saves.

use std::fmt;

use crate::config::{MlpKind, ModelConfig};

/// A projection inside a decoder layer that LoRA can adapt, named as in HF Llama models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraModule {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl LoraModule {
    pub const ALL: [LoraModule; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// Every module's PEFT name, in [`LoraModule::ALL`]'s order (all seven: what
    /// "target every projection" means).
    pub const NAMES: [&'static str; 7] = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];

    /// The name PEFT's `target_modules` uses (`q_proj`).
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The submodule of the decoder layer that holds it.
    pub fn parent(self) -> &'static str {
        match self {
            Self::QProj | Self::KProj | Self::VProj | Self::OProj => "self_attn",
            Self::GateProj | Self::UpProj | Self::DownProj => "mlp",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// `(in_features, out_features)` of this projection in `base`, or `None` when the base
    /// has no such layer (a GELU MLP has no `gate_proj`).
    pub fn features(self, base: &ModelConfig) -> Option<(usize, usize)> {
        let d = base.hidden_size;
        let q = base.num_heads * base.head_dim;
        let kv = base.num_kv_heads * base.head_dim;
        let ffn = base.intermediate_size;
        match self {
            Self::QProj => Some((d, q)),
            Self::KProj | Self::VProj => Some((d, kv)),
            Self::OProj => Some((q, d)),
            Self::GateProj if base.kinds.mlp != MlpKind::SwiGlu => None,
            Self::GateProj | Self::UpProj => Some((d, ffn)),
            Self::DownProj => Some((ffn, d)),
        }
    }
}

impl fmt::Display for LoraModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.parent(), self.name())
    }
}

/// One adapted linear layer: a module in one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoraTarget {
    pub layer: usize,
    pub module: LoraModule,
}

impl LoraTarget {
    pub fn new(layer: usize, module: LoraModule) -> Self {
        Self { layer, module }
    }

    /// The base weight this target adapts (`model.layers.3.self_attn.q_proj.weight`), for
    /// merging into a Hugging Face checkpoint.
    pub fn base_weight_name(&self) -> String {
        format!("model.layers.{}.{}.weight", self.layer, self.module)
    }

    /// PEFT's name for one factor of this target's adapter.
    pub fn peft_tensor_name(&self, factor: LoraFactor) -> String {
        format!(
            "{PEFT_PREFIX}{}.{}.{}.weight",
            self.layer,
            self.module,
            factor.name()
        )
    }

    /// The target and factor of a PEFT tensor name, or `None` if `name` is not one.
    pub fn parse_peft_tensor_name(name: &str) -> Option<(LoraTarget, LoraFactor)> {
        let rest = name.strip_prefix(PEFT_PREFIX)?.strip_suffix(".weight")?;
        let mut parts = rest.split('.');
        let layer_text = parts.next()?;
        // `usize::from_str` takes a leading `+`; PEFT names never have one.
        if !layer_text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let layer: usize = layer_text.parse().ok()?;
        let (parent, module, factor) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let module = LoraModule::from_name(module).filter(|m| m.parent() == parent)?;
        let factor = match factor {
            "lora_A" => LoraFactor::A,
            "lora_B" => LoraFactor::B,
            _ => return None,
        };
        Some((LoraTarget { layer, module }, factor))
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {} {}", self.layer, self.module)
    }
}

/// LoRA's two factors: `A` (r, in_features) projects down, `B` (out_features, r) back up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraFactor {
    A,
    B,
}

impl LoraFactor {
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "lora_A",
            Self::B => "lora_B",
        }
    }

    /// The factor's shape for rank `r` on a layer with these features.
    pub fn shape(self, r: usize, in_features: usize, out_features: usize) -> [usize; 2] {
        match self {
            Self::A => [r, in_features],
            Self::B => [out_features, r],
        }
    }
}

/// PEFT wraps the model twice (`PeftModel.base_model` is a `LoraModel` whose `.model` is the
/// `LlamaForCausalLM`), and the HF model keeps its decoder under `model.`.
const PEFT_PREFIX: &str = "base_model.model.model.layers.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_names_round_trip_and_match_peft_spelling() {
        let t = LoraTarget::new(12, LoraModule::VProj);
        let a = t.peft_tensor_name(LoraFactor::A);
        assert_eq!(
            a,
            "base_model.model.model.layers.12.self_attn.v_proj.lora_A.weight"
        );
        assert_eq!(
            LoraTarget::new(0, LoraModule::DownProj).peft_tensor_name(LoraFactor::B),
            "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
        );
        assert_eq!(
            t.base_weight_name(),
            "model.layers.12.self_attn.v_proj.weight"
        );
        for module in LoraModule::ALL {
            for factor in [LoraFactor::A, LoraFactor::B] {
                let t = LoraTarget::new(7, module);
                let name = t.peft_tensor_name(factor);
                assert_eq!(LoraTarget::parse_peft_tensor_name(&name), Some((t, factor)));
            }
        }
    }

    #[test]
    fn parse_rejects_near_misses() {
        for bad in [
            "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight", // wrong parent
            "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight",
            "base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.+1.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.bias",
            "base_model.model.lm_head.lora_A.weight",
            "model.layers.0.self_attn.q_proj.lora_A.weight",
        ] {
            assert_eq!(LoraTarget::parse_peft_tensor_name(bad), None, "{bad}");
        }
    }
}

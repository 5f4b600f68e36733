//! Weight access by checkpoint name. Model code asks for Hugging Face names through a
//! prefix path (`w.pp("self_attn").pp("q_proj")`); each [`WeightSource`] maps those names to
//! its own file layout, so no model file ever sees a GGUF or safetensors name.

pub mod fingerprint;
pub mod gguf;
pub mod rope_rows;
pub mod safetensors;
pub mod vars;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::config::NormKind;
use crate::error::{ModelError, Result};
use crate::layers::{Embedding, LayerNorm, Linear, Norm, RmsNorm, Weight};
use crate::lora::LoraSet;

pub trait WeightSource: Send + Sync {
    fn contains(&self, name: &str) -> bool;
    /// The tensor stored under `name`, quantized tensors kept quantized.
    fn get(&self, name: &str) -> Result<Weight>;
    fn device(&self) -> &Device;
}

/// A [`WeightSource`] seen through a name prefix.
#[derive(Clone)]
pub struct Weights {
    source: Arc<dyn WeightSource>,
    prefix: String,
    /// An adapter whose updates [`Weights::linear`] attaches to the layers it targets.
    lora: Option<Arc<LoraSet>>,
}

impl Weights {
    pub fn new(source: Arc<dyn WeightSource>) -> Self {
        Self {
            source,
            prefix: String::new(),
            lora: None,
        }
    }

    /// The same weights with an adapter: every linear layer it targets gets its update.
    pub fn with_lora(mut self, lora: Arc<LoraSet>) -> Self {
        self.lora = Some(lora);
        self
    }

    /// The same weights under `prefix.name`.
    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Self {
            source: self.source.clone(),
            prefix,
            lora: self.lora.clone(),
        }
    }

    fn full(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    pub fn device(&self) -> &Device {
        self.source.device()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.full(name))
    }

    fn checked(&self, leaf: &str, expected: &[usize]) -> Result<Weight> {
        let name = self.full(leaf);
        if !self.source.contains(&name) {
            return Err(ModelError::MissingTensor(name));
        }
        let w = self.source.get(&name)?;
        if w.dims() != expected {
            return Err(ModelError::ShapeMismatch {
                name,
                expected: expected.to_vec(),
                found: w.dims(),
            });
        }
        Ok(w)
    }

    /// A dense f32 tensor (dequantized if stored quantized).
    pub fn tensor(&self, leaf: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self
            .checked(leaf, shape)?
            .dequantize()?
            .to_dtype(DType::F32)?)
    }

    pub fn linear(&self, out_features: usize, in_features: usize, bias: bool) -> Result<Linear> {
        let weight = self.checked("weight", &[out_features, in_features])?;
        let weight = match weight {
            Weight::Dense(t) => Weight::Dense(t.to_dtype(DType::F32)?),
            q => q,
        };
        let bias = if bias {
            Some(self.tensor("bias", &[out_features])?)
        } else {
            None
        };
        let linear = Linear::new(weight, bias)?;
        Ok(match self.lora.as_ref().and_then(|l| l.get(&self.prefix)) {
            Some(delta) => linear.with_lora(delta),
            None => linear,
        })
    }

    pub fn rms_norm(&self, size: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.tensor("weight", &[size])?, eps))
    }

    pub fn layer_norm(&self, size: usize, eps: f64) -> Result<LayerNorm> {
        let (w, b) = (
            self.tensor("weight", &[size])?,
            self.tensor("bias", &[size])?,
        );
        Ok(LayerNorm::new(w, b, eps))
    }

    /// The norm `kind` names, RMSNorm or LayerNorm.
    pub fn norm(&self, kind: NormKind, size: usize, eps: f64) -> Result<Norm> {
        Ok(match kind {
            NormKind::RmsNorm => Norm::Rms(self.rms_norm(size, eps)?),
            NormKind::LayerNorm => Norm::Layer(self.layer_norm(size, eps)?),
        })
    }

    pub fn embedding(&self, vocab: usize, hidden: usize) -> Result<Embedding> {
        let weight = match self.checked("weight", &[vocab, hidden])? {
            Weight::Dense(t) => Weight::Dense(t.to_dtype(DType::F32)?),
            q => q,
        };
        Ok(Embedding::new(weight))
    }
}

//! A LoRA adapter on disk in PEFT's layout, so PEFT and vLLM load kiln's adapters and kiln
//! loads theirs: `adapter_config.json` ([`LoraConfig::to_peft_json`]) and
//! `adapter_model.safetensors` holding `lora_A` (r, in_features) and `lora_B`
//! (out_features, r) for every adapted layer under PEFT's tensor names.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::LoraConfig;
use super::target::{LoraFactor, LoraTarget};
use crate::atomic::write_bytes_atomic;
use crate::config::ModelConfig;
use crate::error::{AdapterShapeMismatch, ModelError, Result};
use crate::weights::rope_rows::{halves_to_interleaved, interleaved_to_halves, reordered_heads};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// One adapted layer's factors: the update is `scaling · B · A`.
#[derive(Debug, Clone)]
pub struct LoraWeights {
    /// (r, in_features)
    pub a: Tensor,
    /// (out_features, r)
    pub b: Tensor,
}

/// A whole adapter: its config and the factors of every layer it adapts.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    pub weights: BTreeMap<LoraTarget, LoraWeights>,
}

impl LoraAdapter {
    /// Checks that the adapter applies to `base`: a valid config, target modules that the
    /// base has, layers within its depth, and factor shapes that fit its projections.
    /// `origin` (the adapter's directory or file) is named in errors.
    pub fn check_fits(&self, base: &ModelConfig, origin: &Path) -> Result<()> {
        let fail = |msg: String| {
            Err(ModelError::Adapter {
                path: origin.to_path_buf(),
                msg,
            })
        };
        if let Err(e) = self.config.validate() {
            return fail(e.to_string());
        }
        let modules = self.config.modules()?;
        if self.weights.is_empty() {
            return fail("the adapter has no LoRA tensors".into());
        }
        let r = self.config.r;
        for (target, w) in &self.weights {
            let name = target.peft_tensor_name(LoraFactor::A);
            if target.layer >= base.num_layers {
                return fail(format!(
                    "tensor `{name}` is for layer {}, but the base model has {} layers (0..={})",
                    target.layer,
                    base.num_layers,
                    base.num_layers - 1
                ));
            }
            if !modules.contains(&target.module) {
                return fail(format!(
                    "tensor `{name}` adapts {}, which is not in target_modules {:?}",
                    target.module.name(),
                    self.config.target_modules
                ));
            }
            let Some((in_features, out_features)) = target.module.features(base) else {
                return fail(format!(
                    "tensor `{name}` adapts {}, which the base model does not have (its MLP has no gate)",
                    target.module
                ));
            };
            for (factor, t) in [(LoraFactor::A, &w.a), (LoraFactor::B, &w.b)] {
                let expected = factor.shape(r, in_features, out_features);
                if t.dims() != expected {
                    return Err(ModelError::AdapterShape(Box::new(AdapterShapeMismatch {
                        path: origin.to_path_buf(),
                        tensor: target.peft_tensor_name(factor),
                        found: t.dims().to_vec(),
                        expected: expected.to_vec(),
                        target: target.to_string(),
                        in_features,
                        out_features,
                        r,
                    })));
                }
            }
        }
        Ok(())
    }
}

/// Writes `adapter` into `dir` (created if needed) after checking it fits `base`. Each file
/// is written atomically, so a crash leaves either the old adapter file or the new one.
pub fn save_adapter(dir: &Path, adapter: &LoraAdapter, base: &ModelConfig) -> Result<()> {
    adapter.check_fits(base, dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::file(dir, format!("cannot create: {e}")))?;
    // (name, shape, little-endian f32 bytes): candle's safetensors `View` is for another
    // version of the crate, so the views are built here.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        Vec::with_capacity(2 * adapter.weights.len());
    for (target, w) in &adapter.weights {
        // PEFT applies the adapter to the HF model: B's rows in HF's Q/K order.
        let b = match reordered_heads(base, &target.base_weight_name()) {
            Some(heads) => interleaved_to_halves(&w.b, heads, base.head_dim)?,
            None => w.b.clone(),
        };
        for (factor, t) in [(LoraFactor::A, &w.a), (LoraFactor::B, &b)] {
            let data: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((target.peft_tensor_name(factor), t.dims().to_vec(), bytes));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::file(dir, format!("cannot serialize the adapter: {e}")))?;
    // transformers' loaders look for the framework tag PEFT writes.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelError::file(&weights_path, format!("cannot serialize: {e}")))?;
    write_bytes_atomic(&weights_path, &bytes)?;
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let mut json = serde_json::to_string_pretty(&adapter.config.to_peft_json())
        .map_err(|e| ModelError::file(&config_path, e))?;
    json.push('\n');
    Ok(write_bytes_atomic(&config_path, json.as_bytes())?)
}

/// Reads the adapter in `dir` and checks that it fits `base`. Factors come back as f32 on
/// `device` whatever dtype the file stored (PEFT adapters are often f16 or bf16).
pub fn load_adapter(dir: &Path, base: &ModelConfig, device: &Device) -> Result<LoraAdapter> {
    let config = read_config(&dir.join(ADAPTER_CONFIG_FILE))?;
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    let weights = read_weights(&weights_path, device)?;
    let mut adapter = LoraAdapter { config, weights };
    adapter.check_fits(base, &weights_path)?;
    // The file is in HF's Q/K row order; the base may run llama.cpp's (see save_adapter).
    for (target, w) in adapter.weights.iter_mut() {
        if let Some(heads) = reordered_heads(base, &target.base_weight_name()) {
            w.b = halves_to_interleaved(&w.b, heads, base.head_dim)?;
        }
    }
    Ok(adapter)
}

fn read_config(path: &Path) -> Result<LoraConfig> {
    let adapter_err = |msg: String| ModelError::Adapter {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        adapter_err(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file (expected a PEFT adapter directory)".into()
        } else {
            format!("cannot read: {e}")
        })
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| adapter_err(format!("invalid JSON: {e}")))?;
    LoraConfig::from_peft_json(&json).map_err(|e| match e {
        ModelError::LoraConfig(msg) => adapter_err(msg),
        other => other,
    })
}

fn read_weights(path: &Path, device: &Device) -> Result<BTreeMap<LoraTarget, LoraWeights>> {
    let adapter_err = |msg: String| ModelError::Adapter {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| adapter_err(format!("cannot read: {e}")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| adapter_err(format!("not a valid safetensors file: {e}")))?;
    let mut factors: BTreeMap<LoraTarget, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (name, t) in tensors {
        let Some((target, factor)) = LoraTarget::parse_peft_tensor_name(&name) else {
            return Err(adapter_err(format!(
                "tensor `{name}` is not a LoRA factor of a Llama decoder layer (expected \
                 base_model.model.model.layers.N.{{self_attn.{{q,k,v,o}}_proj|mlp.{{gate,up,down}}_proj}}.lora_{{A,B}}.weight)"
            )));
        };
        if !t.dtype().is_float() {
            return Err(adapter_err(format!(
                "tensor `{name}` is {:?}; LoRA factors are floating point",
                t.dtype()
            )));
        }
        let t = t.to_dtype(DType::F32)?;
        let slot = factors.entry(target).or_default();
        match factor {
            LoraFactor::A => slot.0 = Some(t),
            LoraFactor::B => slot.1 = Some(t),
        }
    }
    let mut out = BTreeMap::new();
    for (target, pair) in factors {
        match pair {
            (Some(a), Some(b)) => {
                out.insert(target, LoraWeights { a, b });
            }
            (a, _) => {
                let missing = if a.is_none() {
                    LoraFactor::A
                } else {
                    LoraFactor::B
                };
                return Err(adapter_err(format!(
                    "tensor `{}` is missing (a LoRA layer needs both lora_A and lora_B)",
                    target.peft_tensor_name(missing)
                )));
            }
        }
    }
    Ok(out)
}

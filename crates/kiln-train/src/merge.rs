//! `kiln finetune merge`: a base model with an adapter folded into its weights,
//! W' = W + scale · B·A, written as a Hugging Face Llama directory (f32; a GGUF base is
//! dequantized) that any loader reads without knowing about LoRA.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use kiln_model::atomic::{write_atomic_via, write_bytes_atomic};
use kiln_model::loader;
use kiln_model::lora::{load_adapter, LoraTarget};
use kiln_model::params::parameter_specs;
use kiln_model::weights::rope_rows::{interleaved_to_halves, reordered_heads};
use serde::Serialize;

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub out: PathBuf,
    /// Weight matrices the adapter changed.
    pub merged: usize,
    pub tensors: usize,
    pub parameters: usize,
}

/// Writes `base` with the adapter in `adapter_dir` merged into `out`.
pub fn merge_adapter(base: &Path, adapter_dir: &Path, out: &Path) -> Result<MergeReport> {
    let dev = Device::Cpu;
    let (source, cfg) = loader::open_weights(base, &dev)?;
    let adapter = load_adapter(adapter_dir, &cfg, &dev)?;
    let scale = adapter.config.scaling();
    let by_name: HashMap<String, &LoraTarget> = adapter
        .weights
        .keys()
        .map(|t| (t.base_weight_name(), t))
        .collect();
    let mut tensors = HashMap::new();
    let (mut merged, mut parameters) = (0, 0);
    for spec in parameter_specs(&cfg) {
        if !source.contains(&spec.name) {
            // The tied LM head is the embedding; HF writes it once.
            if spec.name == "lm_head.weight" && cfg.tie_word_embeddings {
                continue;
            }
            return Err(TrainError::InvalidArgument(format!(
                "{}: has no tensor `{}`",
                base.display(),
                spec.name
            )));
        }
        let mut w = source.get(&spec.name)?.dequantize()?.to_dtype(DType::F32)?;
        if let Some(target) = by_name.get(&spec.name) {
            let f = &adapter.weights[*target];
            let delta =
                f.b.to_dtype(DType::F32)?
                    .matmul(&f.a.to_dtype(DType::F32)?)?;
            w = (w + (delta * scale)?)?;
            merged += 1;
        }
        // Written for HF's RoPE (see kiln_model::weights::rope_rows).
        if let Some(heads) = reordered_heads(&cfg, &spec.name) {
            w = interleaved_to_halves(&w, heads, cfg.head_dim)?;
        }
        parameters += w.elem_count();
        tensors.insert(spec.name, w.contiguous()?);
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, "create", e))?;
    write_atomic_via(&out.join("model.safetensors"), |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
    })?;
    write_config_and_tokenizer(base, &cfg, out)?;
    Ok(MergeReport {
        out: out.to_path_buf(),
        merged,
        tensors: tensors.len(),
        parameters,
    })
}

/// config.json, tokenizer.json and tokenizer_config.json (with the chat template) of `base`
/// for the merged directory: an HF base's own files, a GGUF's rebuilt from its metadata.
fn write_config_and_tokenizer(
    base: &Path,
    cfg: &kiln_model::ModelConfig,
    out: &Path,
) -> Result<()> {
    let json = |v: &serde_json::Value| -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(v).map_err(|e| TrainError::InvalidArgument(e.to_string()))
    };
    if base.is_dir() {
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            let from = base.join(f);
            if from.exists() {
                let bytes = std::fs::read(&from).map_err(|e| TrainError::io(&from, "read", e))?;
                write_bytes_atomic(&out.join(f), &bytes)?;
            }
        }
        return Ok(());
    }
    if cfg.rope.scaling.is_some() {
        return Err(TrainError::InvalidArgument(format!(
            "{}: RoPE scaling is not written to config.json yet; merge from the HF directory",
            base.display()
        )));
    }
    write_bytes_atomic(&out.join("config.json"), &json(&cfg.to_hf_json())?)?;
    let (tok, template) = loader::load_tokenizer(base)?;
    let tok_json = tok
        .inner()
        .to_string(true)
        .map_err(|e| TrainError::InvalidArgument(format!("tokenizer: {e}")))?;
    write_bytes_atomic(&out.join("tokenizer.json"), tok_json.as_bytes())?;
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
        "bos_token": name(tok.bos_token_id()),
        "eos_token": name(tok.eos_token_ids().first().copied()),
    });
    if let Some(t) = template {
        tc["chat_template"] = t.source().into();
    }
    Ok(write_bytes_atomic(
        &out.join("tokenizer_config.json"),
        &json(&tc)?,
    )?)
}

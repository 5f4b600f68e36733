//! The pretraining run directory as a model directory: `config.json` (a Llama config, plus
//! `kiln_kinds` for other switches), `model.safetensors`, `tokenizer.json`,
//! `tokenizer_config.json`, which kiln's own loader and transformers both read.

use std::path::Path;

use candle_core::Tensor;
use kiln_model::atomic::{write_atomic_via, write_bytes_atomic};
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::Param;

use crate::error::{Result, TrainError};

/// The run directory as a model directory: `config.json` (a Llama config, plus `kiln_kinds`
/// for other switches), `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`. With
/// Llama's parts it is a standard Hugging Face Llama directory: `config.json` carries every
/// field transformers' `LlamaConfig` would otherwise default differently (`head_dim`,
/// `rms_norm_eps`, the biases, token ids), so `LlamaForCausalLM.from_pretrained` rebuilds
/// exactly the model kiln trained.
pub(crate) fn export(
    run: &Path,
    cfg: &ModelConfig,
    params: &[Param],
    data_dir: &Path,
) -> Result<()> {
    let tok_path = data_dir.join("tokenizer.json");
    let tok = std::fs::read(&tok_path).map_err(|e| TrainError::io(&tok_path, "read", e))?;
    // GPT-2's convention: the end-of-text token is both BOS and EOS, so generation stops
    // there. A tokenizer without special tokens (characters) has neither.
    let special = end_of_text_token(&tok);
    let special_id = special.as_ref().map(|(_, id)| *id);
    let mut config = cfg.to_hf_json();
    config["bos_token_id"] = special_id.into();
    config["eos_token_id"] = special_id.into();
    let text = serde_json::to_vec_pretty(&config)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    write_bytes_atomic(&run.join("config.json"), &text)?;
    let weights: std::collections::HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    write_atomic_via(&run.join("model.safetensors"), |tmp| {
        candle_core::safetensors::save(&weights, tmp).map_err(std::io::Error::other)
    })?;
    write_bytes_atomic(&run.join("tokenizer.json"), &tok)?;
    // For transformers' AutoTokenizer (the fast tokenizer reads tokenizer.json as is) and
    // kiln's loader (which takes EOS from here too). No chat template: a pretrained run is a
    // base model.
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some((name, _)) = special {
        tc["bos_token"] = name.clone().into();
        tc["eos_token"] = name.into();
    }
    let text =
        serde_json::to_vec_pretty(&tc).map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    write_bytes_atomic(&run.join("tokenizer_config.json"), &text)?;
    Ok(())
}

/// The tokenizer's end-of-text token and id: `<|endoftext|>` when it has one, else its first
/// special token, else `None`.
fn end_of_text_token(tokenizer_json: &[u8]) -> Option<(String, u32)> {
    let v: serde_json::Value = serde_json::from_slice(tokenizer_json).ok()?;
    let special: Vec<(String, u32)> = v["added_tokens"]
        .as_array()?
        .iter()
        .filter(|t| t["special"].as_bool() == Some(true))
        .filter_map(|t| Some((t["content"].as_str()?.to_string(), t["id"].as_u64()? as u32)))
        .collect();
    special
        .iter()
        .find(|(name, _)| name == crate::data::tokenizer_train::ENDOFTEXT)
        .or(special.first())
        .cloned()
}

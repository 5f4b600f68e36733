//! Opening a model from a path: a GGUF file, or a Hugging Face directory (`config.json`,
//! safetensors, `tokenizer.json`, `tokenizer_config.json`). Returns the model with its
//! tokenizer and chat template.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use serde::Serialize;

use crate::causal_lm::CausalLM;
use crate::chat::{ChatPrompt, ChatTemplate};
use crate::config::{HfLlamaConfig, ModelConfig};
use crate::error::{ModelError, Result};
use crate::llama::Llama;
use crate::lora::LoraSet;
use crate::tokenizer::Tokenizer;
use crate::weights::gguf::{GgufFile, GgufSource};
use crate::weights::safetensors::SafetensorsSource;
use crate::weights::{WeightSource, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Gguf,
    HuggingFace,
}

/// What `kiln info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub architecture: String,
    pub parameters: usize,
    /// Tensor count per storage type, e.g. {"Q4_1": 210, "F32": 61}.
    pub tensor_types: BTreeMap<String, usize>,
    pub context_length: usize,
    pub vocab_size: usize,
    pub has_chat_template: bool,
    pub config: ModelConfig,
}

pub struct LoadedModel {
    pub model: Box<dyn CausalLM>,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    pub info: ModelInfo,
    pub device: Device,
}

impl ModelInfo {
    fn new(
        path: &Path,
        format: ModelFormat,
        config: ModelConfig,
        parameters: usize,
        tensor_types: BTreeMap<String, usize>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            format,
            architecture: config.architecture.clone(),
            parameters,
            tensor_types,
            context_length: config.max_position_embeddings,
            vocab_size: config.vocab_size,
            has_chat_template: false,
            config,
        }
    }
}

impl LoadedModel {
    /// How this model's conversations become prompts ([`ChatPrompt`]: its template, ChatML,
    /// or plain text).
    pub fn chat_prompt(&self) -> Result<ChatPrompt> {
        ChatPrompt::new(self.chat_template.as_ref(), &self.tokenizer)
    }

    fn new(
        model: Box<dyn CausalLM>,
        mut info: ModelInfo,
        tokenizer: Tokenizer,
        chat_template: Option<ChatTemplate>,
        device: &Device,
    ) -> Self {
        info.has_chat_template = chat_template.is_some();
        Self {
            model,
            tokenizer,
            chat_template,
            info,
            device: device.clone(),
        }
    }
}

/// Loads just the tokenizer (and chat template) of a model: cheap, no weights read.
pub fn load_tokenizer(path: &Path) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    match detect(path)? {
        ModelFormat::Gguf => {
            let file = GgufFile::open(path)?;
            gguf_tokenizer(&file)
        }
        ModelFormat::HuggingFace => {
            let cfg = read_hf_config(path)?;
            hf_tokenizer(path, &cfg)
        }
    }
}

pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_with_lora(path, device, |_| Ok(None))
}

/// [`load`] with an adapter attached to the layers it targets. `lora` chooses it once the
/// base's configuration is known (a saved adapter checked against it, or fresh trainable
/// factors sized for it); `None` loads the base alone.
pub fn load_with_lora(
    path: &Path,
    device: &Device,
    lora: impl FnOnce(&ModelConfig) -> Result<Option<Arc<LoraSet>>>,
) -> Result<LoadedModel> {
    match detect(path)? {
        ModelFormat::Gguf => load_gguf(path, device, lora),
        ModelFormat::HuggingFace => load_hf(path, device, lora),
    }
}

/// [`load`] with the PEFT adapter saved in `adapter_dir` applied (checked against the
/// base: every tensor must fit one of its layers).
pub fn load_with_adapter(path: &Path, device: &Device, adapter_dir: &Path) -> Result<LoadedModel> {
    load_with_lora(path, device, |cfg| {
        let adapter = crate::lora::load_adapter(adapter_dir, cfg, device)?;
        Ok(Some(Arc::new(LoraSet::from_adapter(&adapter)?)))
    })
}

/// The weights of the model at `path` by Hugging Face name (quantized tensors kept
/// quantized) and its configuration, without building the model: for tools that rewrite
/// weights (merging an adapter).
pub fn open_weights(path: &Path, device: &Device) -> Result<(Arc<dyn WeightSource>, ModelConfig)> {
    Ok(match detect(path)? {
        ModelFormat::Gguf => {
            let file = Arc::new(GgufFile::open(path)?);
            let cfg = file.model_config()?;
            (Arc::new(GgufSource::new(file, device)), cfg)
        }
        ModelFormat::HuggingFace => {
            let cfg = read_hf_config(path)?;
            (Arc::new(SafetensorsSource::open_dir(path, device)?), cfg)
        }
    })
}

/// The weights the model reads: `source`, with the adapter `lora` chooses for `cfg`.
fn weights_for(
    source: Arc<dyn WeightSource>,
    cfg: &ModelConfig,
    lora: impl FnOnce(&ModelConfig) -> Result<Option<Arc<LoraSet>>>,
) -> Result<Weights> {
    let w = Weights::new(source);
    Ok(match lora(cfg)? {
        Some(set) => w.with_lora(set),
        None => w,
    })
}

fn detect(path: &Path) -> Result<ModelFormat> {
    if !path.exists() {
        return Err(ModelError::file(path, "no such file or directory"));
    }
    if path.is_dir() {
        if !path.join("config.json").exists() {
            return Err(ModelError::file(
                path,
                "directory has no config.json (expected a Hugging Face model directory)",
            ));
        }
        return Ok(ModelFormat::HuggingFace);
    }
    Ok(ModelFormat::Gguf)
}

fn gguf_tokenizer(file: &GgufFile) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tokenizer = Tokenizer::from_gguf(file)?;
    let tok_str = |id: Option<u32>| {
        id.and_then(|i| tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    let template = match file.get_str("tokenizer.chat_template") {
        Some(src) => Some(ChatTemplate::new(
            src,
            &tok_str(tokenizer.bos_token_id()),
            &tok_str(tokenizer.eos_token_ids().first().copied()),
        )?),
        None => None,
    };
    Ok((tokenizer, template))
}

fn load_gguf(
    path: &Path,
    device: &Device,
    lora: impl FnOnce(&ModelConfig) -> Result<Option<Arc<LoraSet>>>,
) -> Result<LoadedModel> {
    let file = Arc::new(GgufFile::open(path)?);
    let cfg = file.model_config()?;
    let (tokenizer, chat_template) = gguf_tokenizer(&file)?;
    let mut tensor_types = BTreeMap::new();
    let mut parameters = 0;
    for (name, ty, dims) in file.tensor_types() {
        if name == "rope_freqs.weight" {
            continue;
        }
        *tensor_types
            .entry(format!("{ty:?}").to_uppercase())
            .or_insert(0) += 1;
        parameters += dims.iter().product::<usize>();
    }
    let source: Arc<dyn WeightSource> = Arc::new(GgufSource::new(file, device));
    let model = build_model(&weights_for(source, &cfg, lora)?, &cfg)?;
    let info = ModelInfo::new(path, ModelFormat::Gguf, cfg, parameters, tensor_types);
    Ok(LoadedModel::new(
        model,
        info,
        tokenizer,
        chat_template,
        device,
    ))
}

fn read_hf_config(dir: &Path) -> Result<ModelConfig> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| ModelError::file(&p, e))?;
    let cfg: HfLlamaConfig = serde_json::from_str(&text).map_err(|e| ModelError::file(&p, e))?;
    cfg.into_config().map_err(|e| match e {
        ModelError::Config(m) => ModelError::file(&p, m),
        other => other,
    })
}

/// A token given in tokenizer_config.json as a string or as `{"content": ...}`.
fn token_string(v: Option<&serde_json::Value>) -> Option<String> {
    let v = v?;
    v.as_str().map(str::to_string).or_else(|| {
        v.get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string)
    })
}

fn hf_tokenizer(dir: &Path, cfg: &ModelConfig) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tc_path = dir.join("tokenizer_config.json");
    let tc: serde_json::Value = if tc_path.exists() {
        let text = std::fs::read_to_string(&tc_path).map_err(|e| ModelError::file(&tc_path, e))?;
        serde_json::from_str(&text).map_err(|e| ModelError::file(&tc_path, e))?
    } else {
        serde_json::Value::Null
    };
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(ModelError::file(
            dir,
            "no tokenizer.json in the model directory",
        ));
    }
    let mut tokenizer =
        Tokenizer::from_file(&tok_path, cfg.bos_token_id, cfg.eos_token_ids.clone())?;
    let bos = token_string(tc.get("bos_token"));
    let eos = token_string(tc.get("eos_token"));
    if let Some(id) = eos.as_deref().and_then(|e| tokenizer.token_to_id(e)) {
        if !tokenizer.eos_token_ids().contains(&id) {
            let mut ids = tokenizer.eos_token_ids().to_vec();
            ids.push(id);
            tokenizer = Tokenizer::from_file(&tok_path, cfg.bos_token_id, ids)?;
        }
    }
    let source = match tc.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        // A list of named templates: take "default".
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template").and_then(|s| s.as_str()))
            .map(str::to_string),
        _ => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
    };
    let template = match source {
        Some(src) => Some(ChatTemplate::new(
            &src,
            &bos.unwrap_or_default(),
            &eos.unwrap_or_default(),
        )?),
        None => None,
    };
    Ok((tokenizer, template))
}

fn load_hf(
    dir: &Path,
    device: &Device,
    lora: impl FnOnce(&ModelConfig) -> Result<Option<Arc<LoraSet>>>,
) -> Result<LoadedModel> {
    let cfg = read_hf_config(dir)?;
    let (tokenizer, chat_template) = hf_tokenizer(dir, &cfg)?;
    let st = SafetensorsSource::open_dir(dir, device)?;
    let mut tensor_types = BTreeMap::new();
    let names: Vec<String> = st.names().cloned().collect();
    let source: Arc<dyn WeightSource> = Arc::new(st);
    let mut parameters = 0;
    for n in &names {
        let w = source.get(n)?;
        parameters += w.elem_count();
        *tensor_types.entry(w.type_name()).or_insert(0) += 1;
    }
    let model = build_model(&weights_for(source, &cfg, lora)?, &cfg)?;
    let info = ModelInfo::new(dir, ModelFormat::HuggingFace, cfg, parameters, tensor_types);
    Ok(LoadedModel::new(
        model,
        info,
        tokenizer,
        chat_template,
        device,
    ))
}

/// The implementation of the configuration's architecture: the one place a new
/// architecture is added (every Llama-family model is [`Llama`] today).
pub fn build_model(w: &Weights, cfg: &ModelConfig) -> Result<Box<dyn CausalLM>> {
    Ok(Box::new(Llama::load(w, cfg)?))
}

//! GGUF files (llama.cpp): metadata, the tensor directory, and tensors read as candle
//! `QTensor`s so quantized weights stay quantized. Hugging Face names are mapped to GGUF's
//! `blk.N.attn_q.weight` scheme here and nowhere else.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::Device;

use crate::config::{ModelConfig, RopeConfig, RopeScaling, RopeStyle};
use crate::error::{ModelError, Result};
use crate::layers::Weight;
use crate::weights::WeightSource;

/// An open GGUF file: parsed header plus a handle for reading tensor data on demand.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    file: Mutex<BufReader<File>>,
}

/// ggml type ids kiln cannot run, by name, for error messages.
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        4 => "Q4_2 (removed from ggml)",
        5 => "Q4_3 (removed from ggml)",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "an unknown ggml type",
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| ModelError::file(path, e))?;
        let size = f.metadata()?.len();
        let mut reader = BufReader::new(f);
        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(ModelError::file(path, "not a GGUF file (bad magic)"));
        }
        reader.rewind()?;
        let content = Content::read(&mut reader).map_err(|e| {
            let msg = crate::error::candle_message(&e);
            match msg.strip_prefix("unknown dtype for tensor ") {
                Some(id) => {
                    let id: u32 = id.trim().parse().unwrap_or(u32::MAX);
                    ModelError::file(
                        path,
                        format!(
                            "unsupported quantization type {} (ggml type {id}); kiln reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K..Q6_K",
                            ggml_type_name(id)
                        ),
                    )
                }
                None => ModelError::file(path, format!("corrupt or truncated GGUF header: {msg}")),
            }
        })?;
        // Every tensor's bytes must lie inside the file, or the file was cut short.
        for (name, info) in &content.tensor_infos {
            let n = info.shape.elem_count();
            let bytes = n / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
            let end = content.tensor_data_offset + info.offset + bytes as u64;
            if end > size {
                return Err(ModelError::file(
                    path,
                    format!("truncated GGUF: tensor `{name}` ends at byte {end} but the file has {size}"),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            file: Mutex::new(reader),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &String> {
        self.content.tensor_infos.keys()
    }

    /// (name, type, shape in ggml's reversed order flipped to row-major) of every tensor.
    pub fn tensor_types(&self) -> Vec<(String, GgmlDType, Vec<usize>)> {
        let mut v: Vec<_> = self
            .content
            .tensor_infos
            .iter()
            .map(|(n, i)| (n.clone(), i.ggml_dtype, i.shape.dims().to_vec()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata()
            .get(key)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        let v = self.metadata().get(key)?;
        v.to_u64()
            .ok()
            .or_else(|| v.to_u32().ok().map(u64::from))
            .or_else(|| v.to_i32().ok().map(|x| x as u64))
            .or_else(|| v.to_i64().ok().map(|x| x as u64))
            .or_else(|| v.to_u16().ok().map(u64::from))
            .or_else(|| v.to_u8().ok().map(u64::from))
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        let v = self.metadata().get(key)?;
        v.to_f32().ok().map(f64::from).or_else(|| v.to_f64().ok())
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.metadata().get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn get_array(&self, key: &str) -> Option<&Vec<Value>> {
        self.metadata().get(key).and_then(|v| v.to_vec().ok())
    }

    fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key)
            .ok_or_else(|| ModelError::file(&self.path, format!("missing metadata key `{key}`")))
    }

    pub fn architecture(&self) -> Result<String> {
        self.get_str("general.architecture")
            .map(str::to_string)
            .ok_or_else(|| {
                ModelError::file(&self.path, "missing metadata key `general.architecture`")
            })
    }

    /// The model configuration written in the file's metadata.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let arch = self.architecture()?;
        let style = match arch.as_str() {
            // llama.cpp's converter permutes Llama Q/K rows for interleaved rotation.
            "llama" | "mistral" => RopeStyle::Interleaved,
            "qwen2" => RopeStyle::Halves,
            _ => return Err(ModelError::UnsupportedArchitecture(arch)),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = self.require_u64(&key("embedding_length"))? as usize;
        let heads = self.require_u64(&key("attention.head_count"))? as usize;
        let kv_heads = self
            .get_u64(&key("attention.head_count_kv"))
            .unwrap_or(heads as u64) as usize;
        let head_dim = self
            .get_u64(&key("attention.key_length"))
            .or_else(|| self.get_u64(&key("rope.dimension_count")))
            .map(|d| d as usize)
            .unwrap_or(hidden / heads.max(1));
        let vocab_size = match self.get_array("tokenizer.ggml.tokens") {
            Some(t) => t.len(),
            None => self.require_u64(&key("vocab_size"))? as usize,
        };
        let scaling = match self.get_str(&key("rope.scaling.type")) {
            Some("linear") => Some(RopeScaling::Linear {
                factor: self.get_f64(&key("rope.scaling.factor")).unwrap_or(1.0) as f32,
            }),
            Some("none") | None => None,
            Some(other) => {
                return Err(ModelError::file(
                    &self.path,
                    format!("rope scaling `{other}` is not supported (supported: linear, llama3)"),
                ))
            }
        };
        let scaling = match (
            scaling,
            self.content.tensor_infos.contains_key("rope_freqs.weight"),
        ) {
            (None, true) => {
                let t = self
                    .read_tensor("rope_freqs.weight")?
                    .dequantize(&Device::Cpu)?;
                Some(RopeScaling::FreqFactors(t.flatten_all()?.to_vec1::<f32>()?))
            }
            (s, _) => s,
        };
        let eos = self
            .get_u64("tokenizer.ggml.eos_token_id")
            .map(|x| x as u32);
        let eot = self
            .get_u64("tokenizer.ggml.eot_token_id")
            .map(|x| x as u32);
        let mut eos_token_ids: Vec<u32> = eos.into_iter().chain(eot).collect();
        eos_token_ids.dedup();
        let cfg = ModelConfig {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: self.require_u64(&key("feed_forward_length"))? as usize,
            num_layers: self.require_u64(&key("block_count"))? as usize,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            rms_norm_eps: self
                .get_f64(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope: RopeConfig {
                theta: self.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0) as f32,
                style,
                scaling,
            },
            max_position_embeddings: self.get_u64(&key("context_length")).unwrap_or(2048) as usize,
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            attention_bias: self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            bos_token_id: self
                .get_u64("tokenizer.ggml.bos_token_id")
                .map(|x| x as u32),
            eos_token_ids,
            kinds: Default::default(),
            architecture: arch,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads one tensor by its GGUF name.
    pub fn read_tensor(&self, name: &str) -> Result<candle_core::quantized::QTensor> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.content
            .tensor(&mut *f, name, &Device::Cpu)
            .map_err(|e| {
                ModelError::file(
                    &self.path,
                    format!(
                        "reading tensor `{name}`: {}",
                        crate::error::candle_message(&e)
                    ),
                )
            })
    }
}

/// Maps a Hugging Face Llama tensor name to its GGUF name.
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, leaf) = rest.rsplit_once('.')?;
    let gguf = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.{leaf}"))
}

/// A GGUF file as a [`WeightSource`] addressed by Hugging Face names.
pub struct GgufSource {
    file: Arc<GgufFile>,
    device: Device,
}

impl GgufSource {
    pub fn new(file: Arc<GgufFile>, device: &Device) -> Self {
        Self {
            file,
            device: device.clone(),
        }
    }
}

impl WeightSource for GgufSource {
    fn contains(&self, name: &str) -> bool {
        hf_to_gguf_name(name).is_some_and(|g| self.file.content.tensor_infos.contains_key(&g))
    }

    fn get(&self, name: &str) -> Result<Weight> {
        let gguf = hf_to_gguf_name(name).ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        let q = self.file.read_tensor(&gguf)?;
        Ok(match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                Weight::Dense(q.dequantize(&self.device)?)
            }
            _ => Weight::Quantized(Arc::new(q)),
        })
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hf_names_to_gguf() {
        let cases = [
            ("model.embed_tokens.weight", "token_embd.weight"),
            (
                "model.layers.3.self_attn.q_proj.weight",
                "blk.3.attn_q.weight",
            ),
            ("model.layers.3.self_attn.q_proj.bias", "blk.3.attn_q.bias"),
            (
                "model.layers.12.mlp.down_proj.weight",
                "blk.12.ffn_down.weight",
            ),
            (
                "model.layers.0.post_attention_layernorm.weight",
                "blk.0.ffn_norm.weight",
            ),
            ("lm_head.weight", "output.weight"),
        ];
        for (hf, gguf) in cases {
            assert_eq!(hf_to_gguf_name(hf).as_deref(), Some(gguf));
        }
        assert_eq!(hf_to_gguf_name("model.layers.0.unknown.weight"), None);
    }
}

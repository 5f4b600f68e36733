//! A BERT-family sentence embedder in sentence-transformers' layout (all-MiniLM-L6-v2):
//! the encoder as candle-transformers has it, then mean pooling over the real tokens (the
//! attention mask, not the padding) and L2 normalisation, so a dot product is a cosine.
//! Texts are embedded in batches of similar length (less padding), each truncated to the
//! model's `max_seq_length`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::chunk::{TokenSpans, WordTokens};
use crate::error::{io_err, RagError, Result};

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    /// The same tokenizer without padding or truncation: chunk boundaries by its tokens.
    span_tokenizer: Tokenizer,
    dim: usize,
    /// Tokens read of a text; the rest is cut off.
    max_len: usize,
    /// The directory's name, e.g. "all-MiniLM-L6-v2".
    pub name: String,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// sha256 of the weights: an index remembers it and refuses another embedder.
    pub sha256: String,
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`
    /// (`sentence_bert_config.json`'s `max_seq_length` when present, else 256).
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |message: String| RagError::Embedder {
            dir: dir.to_path_buf(),
            message,
        };
        let read = |name: &str| -> Result<String> {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(io_err(&p))
        };
        let config: Config = serde_json::from_str(&read("config.json")?)
            .map_err(|e| bad(format!("config.json is not a BERT config: {e}")))?;
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(256, |n| n as usize);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        let mut span_tokenizer = tokenizer.clone();
        span_tokenizer.with_padding(None);
        span_tokenizer
            .with_truncation(None)
            .map_err(|e| bad(format!("truncation: {e}")))?;
        // The shipped tokenizer pads every text to 128; pad a batch to its longest text and
        // let the attention mask keep padding out of the mean.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| bad(format!("truncation: {e}")))?;
        let weights = dir.join("model.safetensors");
        let sha256 = kiln_model::weights::fingerprint::sha256_files(std::slice::from_ref(&weights))
            .map_err(|e| bad(format!("hashing the weights: {e}")))?;
        // SAFETY: the weights file is mapped read-only and not written while the index runs.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu)? };
        let model =
            BertModel::load(vb, &config).map_err(|e| bad(format!("model.safetensors: {e}")))?;
        let name = dir
            .file_name()
            .map_or("embedder".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            model,
            tokenizer,
            span_tokenizer,
            dim: config.hidden_size,
            max_len,
            name,
            dir: dir.to_path_buf(),
            sha256,
        })
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokens of a text the model reads (special tokens included; a longer text is cut).
    pub fn max_tokens(&self) -> usize {
        self.max_len
    }

    /// Tokens the model reads of `text` (special tokens included, truncation applied).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .map_err(|e| RagError::Other(format!("tokenizing for the embedder: {e}")))
    }

    /// Unit vectors for `texts`, in order, computed `batch_size` at a time.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        // Similar lengths share a batch, so little of each batch is padding.
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![vec![]; texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, v) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| RagError::Other(format!("tokenizing for the embedder: {e}")))?;
        let n = enc.len();
        let t = enc.first().map_or(0, |e| e.get_ids().len());
        let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let types: Vec<u32> = enc.iter().flat_map(|e| e.get_type_ids().to_vec()).collect();
        let mask: Vec<u32> = enc
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let dev = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, t), dev)?;
        let types = Tensor::from_vec(types, (n, t), dev)?;
        let mask = Tensor::from_vec(mask, (n, t), dev)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, t, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, t, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

impl TokenSpans for Embedder {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        match self.span_tokenizer.encode(text, false) {
            Ok(enc) => enc
                .get_offsets()
                .iter()
                .filter(|(a, b)| b > a)
                .map(|&(a, b)| a..b)
                .collect(),
            // A text the tokenizer cannot take is chunked by words instead.
            Err(_) => WordTokens.token_spans(text),
        }
    }
}

/// Cosine of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

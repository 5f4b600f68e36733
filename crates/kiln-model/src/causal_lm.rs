//! The one causal-LM contract every architecture implements. The KV cache travels in the
//! [`ForwardContext`]; models keep no hidden state between calls.

use candle_core::Tensor;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache::KvCache;

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// Only the last position of each row: (b, vocab). Generation.
    Last,
    /// Every position: (b, t, vocab). Scoring, perplexity, training.
    All,
}

/// Token ids (b, t) of dtype u32, all rows starting at position `start_pos`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub input_ids: Tensor,
    pub start_pos: usize,
    pub logits: LogitsMode,
}

impl Batch {
    pub fn new(input_ids: Tensor, start_pos: usize, logits: LogitsMode) -> Self {
        Self {
            input_ids,
            start_pos,
            logits,
        }
    }

    /// One row of tokens on `device`.
    pub fn from_tokens(
        tokens: &[u32],
        start_pos: usize,
        logits: LogitsMode,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        Ok(Self::new(ids, start_pos, logits))
    }
}

/// Per-call state: the KV cache (absent for a cache-free full forward, e.g. training).
#[derive(Debug, Default)]
pub struct ForwardContext<'a> {
    pub cache: Option<&'a mut KvCache>,
}

impl<'a> ForwardContext<'a> {
    pub fn with_cache(cache: &'a mut KvCache) -> Self {
        Self { cache: Some(cache) }
    }

    pub fn no_cache() -> Self {
        Self { cache: None }
    }
}

pub trait CausalLM: Send + Sync {
    fn config(&self) -> &ModelConfig;

    /// Runs the model over `batch`, appending to the context's cache when present, and
    /// returns f32 logits shaped as `batch.logits` asks.
    fn forward(&self, batch: &Batch, ctx: &mut ForwardContext<'_>) -> Result<Tensor>;

    /// A fresh cache sized for this model.
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config().num_layers)
    }
}

//! The one causal-LM contract every architecture implements. The KV cache travels in the
//! [`ForwardContext`]; models keep no hidden state between calls.

use candle_core::Tensor;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache::{KvCache, LayerKvCache};
use crate::paged_kv::{PagedKvCache, PagedLayer, PagedSeq};

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

/// Per-call state: the KV cache, contiguous (one stream, or rows that move together) or
/// paged (the serving engine's sequences), or none (a cache-free full forward: training).
#[derive(Debug, Default)]
pub struct ForwardContext<'a> {
    pub cache: Option<&'a mut KvCache>,
    pub paged: Option<PagedStep<'a>>,
}

/// A paged forward pass: the batch's (1, T) tokens are the sequences' new tokens one after
/// another, `seqs[i].len` each; logits come back as rows in sequence order, as many per
/// sequence as [`PagedSeq::logit_rows`] says.
#[derive(Debug)]
pub struct PagedStep<'a> {
    pub cache: &'a mut PagedKvCache,
    pub seqs: &'a [PagedSeq],
}

impl<'a> ForwardContext<'a> {
    pub fn with_cache(cache: &'a mut KvCache) -> Self {
        Self {
            cache: Some(cache),
            paged: None,
        }
    }

    pub fn no_cache() -> Self {
        Self::default()
    }

    pub fn paged(cache: &'a mut PagedKvCache, seqs: &'a [PagedSeq]) -> Self {
        Self {
            cache: None,
            paged: Some(PagedStep { cache, seqs }),
        }
    }
}

/// What one layer reads and writes: nothing, its contiguous cache, or its paged blocks.
#[derive(Debug)]
pub enum LayerCache<'a> {
    None,
    Contiguous(&'a mut LayerKvCache),
    Paged {
        layer: &'a mut PagedLayer,
        seqs: &'a [PagedSeq],
    },
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

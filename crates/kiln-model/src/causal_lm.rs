//! The one causal-LM contract every architecture implements. The KV cache travels in the
//! [`ForwardContext`], whose variant names the mode; models keep no hidden state between
//! calls.

use candle_core::{Device, Tensor};

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

/// How a forward pass runs, and the cache it reads and extends. Each mode is explicit:
/// there is no cache hidden in the model and no rule implied by a missing one.
#[derive(Debug, Default)]
pub enum ForwardContext<'a> {
    /// No cache: every position computed from the batch alone through the differentiable
    /// training kernels (training, and losses over whole sequences).
    #[default]
    Training,
    /// One contiguous cache (one stream, or rows that move together), appended to.
    Contiguous(&'a mut KvCache),
    /// The serving engine's sequences, each with its own blocks of a paged cache.
    Paged(PagedStep<'a>),
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
    pub fn training() -> Self {
        Self::Training
    }

    pub fn with_cache(cache: &'a mut KvCache) -> Self {
        Self::Contiguous(cache)
    }

    pub fn paged(cache: &'a mut PagedKvCache, seqs: &'a [PagedSeq]) -> Self {
        Self::Paged(PagedStep { cache, seqs })
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

/// The contract every architecture implements, and all that the crates above kiln-model
/// see of a model: the engine, generation, scoring and the training loops work through it.
pub trait CausalLM: Send + Sync {
    fn config(&self) -> &ModelConfig;

    fn device(&self) -> &Device;

    /// Runs the model over `batch` in the context's mode, appending to its cache when it
    /// has one, and returns f32 logits shaped as `batch.logits` asks.
    fn forward(&self, batch: &Batch, ctx: &mut ForwardContext<'_>) -> Result<Tensor>;

    /// A fresh contiguous cache sized for this model.
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config().num_layers)
    }

    // The decoder as a stack, for training code that keeps only each block's input and
    // recomputes the block in backward (activation checkpointing), or that needs logits at
    // a few positions only: `embed`, then `block(i, ·)` for each block, then `final_norm`
    // and `logits`. All without a cache, at positions 0...

    /// Token embeddings (b, t, hidden), plus learned positions when the model has them.
    fn embed(&self, input_ids: &Tensor) -> Result<Tensor>;

    fn num_blocks(&self) -> usize;

    /// Block `i` over (b, t, hidden) states.
    fn block(&self, i: usize, x: &Tensor) -> Result<Tensor>;

    fn final_norm(&self, x: &Tensor) -> Result<Tensor>;

    /// The LM head over final-norm hidden states (…, hidden) → (…, vocab).
    fn logits(&self, h: &Tensor) -> Result<Tensor>;
}

/// A boxed model is a model, so `&loaded.model` goes wherever `&dyn CausalLM` does.
impl<M: CausalLM + ?Sized> CausalLM for Box<M> {
    fn config(&self) -> &ModelConfig {
        (**self).config()
    }
    fn device(&self) -> &Device {
        (**self).device()
    }
    fn forward(&self, batch: &Batch, ctx: &mut ForwardContext<'_>) -> Result<Tensor> {
        (**self).forward(batch, ctx)
    }
    fn new_cache(&self) -> KvCache {
        (**self).new_cache()
    }
    fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        (**self).embed(input_ids)
    }
    fn num_blocks(&self) -> usize {
        (**self).num_blocks()
    }
    fn block(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        (**self).block(i, x)
    }
    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        (**self).final_norm(x)
    }
    fn logits(&self, h: &Tensor) -> Result<Tensor> {
        (**self).logits(h)
    }
}

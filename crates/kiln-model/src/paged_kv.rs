//! Keys and values of every layer in fixed-size blocks (vLLM's PagedAttention layout):
//! storage only. Which block belongs to which sequence is the serving engine's business
//! (`kiln-engine`'s `BlockPool`); a forward pass receives each sequence's block table in
//! [`PagedSeq`] and writes and reads those blocks directly.

use half::f16;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::kernels::attention::KvBlocks;

/// Which logits a sequence wants from a paged forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqLogits {
    /// None (a prefill chunk that does not reach the end of the prompt).
    None,
    /// The last new position's (the next token is sampled from it).
    Last,
    /// The last `n` new positions' (scoring prompt tokens: every position from the first
    /// scored one; `n` = the chunk's length for a chunk wholly inside the scored part).
    Tail(usize),
}

/// One sequence's part of a paged forward pass: `len` new tokens at positions
/// `start_pos..start_pos + len`, its keys and values for all positions in `block_table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedSeq {
    pub start_pos: usize,
    pub len: usize,
    pub block_table: Vec<u32>,
    pub logits: SeqLogits,
}

impl PagedSeq {
    /// Rows of logits this sequence gets.
    pub fn logit_rows(&self) -> usize {
        match self.logits {
            SeqLogits::None => 0,
            SeqLogits::Last => 1,
            SeqLogits::Tail(n) => n.min(self.len),
        }
    }
}

/// One layer's blocks: `num_blocks * block_size` positions of `row` f16 values each.
#[derive(Debug, Clone)]
pub struct PagedLayer {
    k: Vec<f16>,
    v: Vec<f16>,
    block_size: usize,
    row: usize,
}

impl PagedLayer {
    /// Stores `seq`'s new keys and values, each `seq.len` rows of `row` f32 (RoPE applied),
    /// rounded to f16 like the contiguous cache.
    pub fn write(&mut self, seq: &PagedSeq, k: &[f32], v: &[f32]) -> Result<()> {
        let (bs, row) = (self.block_size, self.row);
        let end = seq.start_pos + seq.len;
        if k.len() != seq.len * row || v.len() != k.len() || end > seq.block_table.len() * bs {
            return Err(ModelError::Op {
                op: "paged kv write",
                msg: format!(
                    "{} positions from {} of {row} values need {} blocks of {bs}; got {} keys and {} blocks",
                    seq.len,
                    seq.start_pos,
                    end.div_ceil(bs),
                    k.len(),
                    seq.block_table.len()
                ),
            });
        }
        for (i, pos) in (seq.start_pos..end).enumerate() {
            let block = seq.block_table[pos / bs] as usize;
            let at = (block * bs + pos % bs) * row;
            if at + row > self.k.len() {
                return Err(ModelError::Op {
                    op: "paged kv write",
                    msg: format!("block {block} is outside the cache"),
                });
            }
            store_f16(&k[i * row..(i + 1) * row], &mut self.k[at..at + row]);
            store_f16(&v[i * row..(i + 1) * row], &mut self.v[at..at + row]);
        }
        Ok(())
    }

    pub fn blocks(&self) -> KvBlocks<'_> {
        KvBlocks {
            k: &self.k,
            v: &self.v,
            block_size: self.block_size,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }
}

fn store_f16(src: &[f32], dst: &mut [f16]) {
    use half::slice::HalfFloatSliceExt;
    dst.convert_from_f32_slice(src);
}

/// The blocks of all layers. Memory is reserved up front (zeroed lazily by the OS).
#[derive(Debug, Clone)]
pub struct PagedKvCache {
    layers: Vec<PagedLayer>,
    num_blocks: usize,
    block_size: usize,
}

impl PagedKvCache {
    pub fn new(cfg: &ModelConfig, num_blocks: usize, block_size: usize) -> Self {
        let row = cfg.num_kv_heads * cfg.head_dim;
        let n = num_blocks * block_size * row;
        let layer = || PagedLayer {
            k: vec![f16::ZERO; n],
            v: vec![f16::ZERO; n],
            block_size,
            row,
        };
        Self {
            layers: (0..cfg.num_layers).map(|_| layer()).collect(),
            num_blocks,
            block_size,
        }
    }

    /// Bytes of keys and values one position takes across all layers.
    pub fn bytes_per_token(cfg: &ModelConfig) -> usize {
        2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * std::mem::size_of::<f16>()
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn layer_mut(&mut self, i: usize) -> &mut PagedLayer {
        &mut self.layers[i]
    }
}

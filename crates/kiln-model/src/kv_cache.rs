//! A contiguous per-layer f16 key/value cache for single-stream generation and evaluation.
//! (The serving engine's paged cache lives in `kiln-engine`.) The model never owns a cache:
//! callers create one and pass it in through [`crate::ForwardContext`].

use half::f16;

use crate::error::{ModelError, Result};
use crate::kernels::attention::KvView;

/// Keys and values of one layer as f16 (what llama.cpp stores by default), laid out
/// (batch, capacity, n_kv_heads * head_dim); positions `0..len` are filled. RoPE is applied
/// before keys are stored.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    k: Vec<f16>,
    v: Vec<f16>,
    batch: usize,
    row: usize,
    cap: usize,
    len: usize,
}

/// Growth step in positions: amortises copies without reserving the whole context.
const GROW: usize = 256;

impl LayerKvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends keys and values for `t` new positions, each (batch, t, row) f32 with
    /// `row = n_kv_heads * head_dim`, rounding them to f16.
    pub fn append(
        &mut self,
        k: &[f32],
        v: &[f32],
        batch: usize,
        t: usize,
        row: usize,
    ) -> Result<()> {
        if k.len() != batch * t * row || v.len() != k.len() {
            return Err(ModelError::Op {
                op: "kv cache append",
                msg: format!(
                    "expected {batch}x{t}x{row} keys and values, got {} and {}",
                    k.len(),
                    v.len()
                ),
            });
        }
        if self.len > 0 && (batch != self.batch || row != self.row) {
            return Err(ModelError::Op {
                op: "kv cache append",
                msg: format!(
                    "cache holds batch {} x row {}, got batch {batch} x row {row}",
                    self.batch, self.row
                ),
            });
        }
        let need = self.len + t;
        if need > self.cap || batch != self.batch || row != self.row {
            let cap = need.div_ceil(GROW) * GROW;
            let mut nk = vec![f16::ZERO; batch * cap * row];
            let mut nv = vec![f16::ZERO; batch * cap * row];
            let filled = self.len * row;
            for bi in 0..batch.min(self.batch) {
                let (src, dst) = (bi * self.cap * row, bi * cap * row);
                nk[dst..dst + filled].copy_from_slice(&self.k[src..src + filled]);
                nv[dst..dst + filled].copy_from_slice(&self.v[src..src + filled]);
            }
            (self.k, self.v, self.cap, self.batch, self.row) = (nk, nv, cap, batch, row);
        }
        for bi in 0..batch {
            let dst = (bi * self.cap + self.len) * row;
            let src = bi * t * row;
            store_f16(&k[src..src + t * row], &mut self.k[dst..dst + t * row]);
            store_f16(&v[src..src + t * row], &mut self.v[dst..dst + t * row]);
        }
        self.len = need;
        Ok(())
    }

    /// Everything cached so far, for [`crate::kernels::attention::causal_attention`].
    pub fn view(&self) -> KvView<'_> {
        KvView {
            k: &self.k,
            v: &self.v,
            cap: self.cap,
            len: self.len,
        }
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

fn store_f16(src: &[f32], dst: &mut [f16]) {
    use half::slice::HalfFloatSliceExt;
    dst.convert_from_f32_slice(src);
}

/// The cache of a whole model: one [`LayerKvCache`] per layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKvCache>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![LayerKvCache::default(); num_layers],
        }
    }

    /// Number of positions cached (the next token's position).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn layer_mut(&mut self, i: usize) -> &mut LayerKvCache {
        &mut self.layers[i]
    }

    /// Forgets positions from `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|l| l.truncate(len));
    }

    pub fn clear(&mut self) {
        self.truncate(0)
    }
}

//! A contiguous per-layer key/value cache for single-stream generation and evaluation.
//! (The serving engine's paged cache lives in `kiln-engine`.) The model never owns a cache:
//! callers create one and pass it in through [`crate::ForwardContext`].

use candle_core::Tensor;

use crate::error::Result;

/// Keys and values of one layer, each (b, n_kv_heads, capacity, head_dim); positions
/// `0..len` are filled.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
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

    /// Appends (b, h, t, d) keys and values; returns views of everything cached so far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let need = self.len + t;
        let cap = self.k.as_ref().map(|c| c.dim(2)).transpose()?.unwrap_or(0);
        if need > cap {
            let new_cap = need.div_ceil(GROW) * GROW;
            let (b, h, _, d) = k.dims4()?;
            let nk = Tensor::zeros((b, h, new_cap, d), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, h, new_cap, d), v.dtype(), v.device())?;
            if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                nk.slice_set(&ok.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&ov.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            self.k = Some(nk);
            self.v = Some(nv);
        }
        let (ck, cv) = match (&self.k, &self.v) {
            (Some(ck), Some(cv)) => (ck, cv),
            _ => unreachable!("allocated above"),
        };
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((ck.narrow(2, 0, need)?, cv.narrow(2, 0, need)?))
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
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

//! Causal multi-head attention with grouped-query heads (Ainslie et al., 2023).

use candle_core::{DType, Device, Tensor};

use crate::causal_lm::LayerCache;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::attention::{causal_attention, paged_attention, AttnDims, SeqQueries};
use crate::kv_cache::LayerKvCache;
use crate::layers::linear::forward_many;
use crate::layers::{Linear, RotaryEmbedding};
use crate::paged_kv::{PagedLayer, PagedSeq};
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn load(w: &Weights, cfg: &ModelConfig) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let bias = cfg.attention_bias;
        Ok(Self {
            q_proj: w.pp("q_proj").linear(cfg.num_heads * d, h, bias)?,
            k_proj: w.pp("k_proj").linear(cfg.num_kv_heads * d, h, bias)?,
            v_proj: w.pp("v_proj").linear(cfg.num_kv_heads * d, h, bias)?,
            o_proj: w.pp("o_proj").linear(h, cfg.num_heads * d, false)?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
        })
    }

    /// `x` is (b, t, hidden) at positions `start..start + t`. With a cache this is the
    /// inference path (f16 keys and values, kiln's attention kernel); without one, the
    /// differentiable fused kernel over the t positions alone (training, and the reference
    /// in tests). With a paged cache, b is 1 and the t rows are several sequences' new
    /// tokens (`start` is unused: each sequence has its own).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: Option<&RotaryEmbedding>,
        start: usize,
        cache: LayerCache<'_>,
    ) -> Result<Tensor> {
        match cache {
            LayerCache::Contiguous(cache) => return self.forward_cached(x, rope, start, cache),
            LayerCache::Paged { layer, seqs } => return self.forward_paged(x, rope, layer, seqs),
            LayerCache::None => {}
        }
        if let (None, Some(w)) = (rope, self.stacked_qkv_weight(x)?) {
            // One q|k|v product feeding the attention kernel packed: x gets one backward
            // product instead of three and their sum.
            let qkv = crate::kernels::train::linear(x, &w)?;
            let y = crate::kernels::train::causal_attention_packed(
                &qkv,
                self.num_heads,
                self.num_kv_heads,
            )?;
            return self.o_proj.forward(&y);
        }
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let q = self.q_proj.forward(x)?;
        let k = self.k_proj.forward(x)?;
        let v = self.v_proj.forward(x)?;
        let (q, k) = match rope {
            Some(r) => {
                // RoPE runs per head: (b, t, n · d) -> (b, n, t, d) and back.
                let rotate = |y: Tensor, n: usize| -> Result<Tensor> {
                    let y = y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?;
                    Ok(r.apply(&y, start)?
                        .transpose(1, 2)?
                        .reshape((b, t, n * d))?)
                };
                (rotate(q, self.num_heads)?, rotate(k, self.num_kv_heads)?)
            }
            None => (q, k),
        };
        let y =
            crate::kernels::train::causal_attention(&q, &k, &v, self.num_heads, self.num_kv_heads)?;
        self.o_proj.forward(&y)
    }

    /// The q, k and v weights stacked into one (n_head + 2·n_kv) · d × hidden matrix, when
    /// all three are dense, unbiased, without an adapter and of `x`'s type (the training
    /// case). Stacking is a graph node, so each weight still gets its own gradient.
    fn stacked_qkv_weight(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let ws = [&self.q_proj, &self.k_proj, &self.v_proj].map(|l| l.dense_unbiased());
        let [Some(q), Some(k), Some(v)] = ws else {
            return Ok(None);
        };
        if [q, k, v].iter().any(|w| w.dtype() != x.dtype()) {
            return Ok(None);
        }
        Ok(Some(Tensor::cat(&[q, k, v], 0)?))
    }

    /// q, k and v of the rows of `x` as host vectors (token-major, the kernels' layout).
    fn qkv_host(&self, x: &Tensor) -> Result<[Vec<f32>; 3]> {
        let host = |y: Tensor| -> Result<Vec<f32>> { Ok(y.flatten_all()?.to_vec1::<f32>()?) };
        let [q, k, v]: [Tensor; 3] = forward_many(&[&self.q_proj, &self.k_proj, &self.v_proj], x)?
            .try_into()
            .map_err(|_| crate::error::ModelError::Op {
                op: "attention",
                msg: "expected three projections".into(),
            })?;
        Ok([host(q)?, host(k)?, host(v)?])
    }

    fn dims(&self) -> AttnDims {
        AttnDims {
            n_head: self.num_heads,
            n_kv: self.num_kv_heads,
            head_dim: self.head_dim,
        }
    }

    fn forward_paged(
        &self,
        x: &Tensor,
        rope: Option<&RotaryEmbedding>,
        layer: &mut PagedLayer,
        seqs: &[PagedSeq],
    ) -> Result<Tensor> {
        let [mut q, mut k, v] = self.qkv_host(x)?;
        let (qw, kw) = (
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        );
        let mut row = 0;
        for s in seqs {
            let (r0, r1) = (row, row + s.len);
            if let Some(rope) = rope {
                rope.rotate_in_place(&mut q[r0 * qw..r1 * qw], s.len, self.num_heads, s.start_pos);
                rope.rotate_in_place(
                    &mut k[r0 * kw..r1 * kw],
                    s.len,
                    self.num_kv_heads,
                    s.start_pos,
                );
            }
            layer.write(s, &k[r0 * kw..r1 * kw], &v[r0 * kw..r1 * kw])?;
            row = r1;
        }
        let mut row = 0;
        let queries: Vec<SeqQueries> = seqs
            .iter()
            .map(|s| {
                row += s.len;
                SeqQueries {
                    q_row: row - s.len,
                    t: s.len,
                    len: s.start_pos + s.len,
                    blocks: &s.block_table,
                }
            })
            .collect();
        let y = paged_attention(&q, &queries, layer.blocks(), self.dims());
        let y = Tensor::from_vec(y, (1, row, qw), x.device())?;
        self.o_proj.forward(&y)
    }

    fn forward_cached(
        &self,
        x: &Tensor,
        rope: Option<&RotaryEmbedding>,
        start: usize,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        // (b, t, heads * d) is already token-major, the layout the kernel and cache use.
        let [mut q, mut k, v] = self.qkv_host(x)?;
        if let Some(rope) = rope {
            rope.rotate_in_place(&mut q, t, self.num_heads, start);
            rope.rotate_in_place(&mut k, t, self.num_kv_heads, start);
        }
        cache.append(&k, &v, b, t, self.num_kv_heads * self.head_dim)?;
        let y = causal_attention(&q, b, t, cache.view(), self.dims());
        let y = Tensor::from_vec(y, (b, t, self.num_heads * self.head_dim), x.device())?;
        self.o_proj.forward(&y)
    }
}

/// softmax(q kᵀ / √d + causal mask) v, where q (b, n_head, t, d) holds positions
/// `start..start + t` and k, v (b, n_kv, start + t, d) hold every position so far. Query
/// heads share a KV head in consecutive groups of n_head / n_kv.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    start: usize,
) -> Result<Tensor> {
    let (b, n_head, t, d) = q.dims4()?;
    let (_, n_kv, total, _) = k.dims4()?;
    let groups = n_head / n_kv;
    // Fold each group's heads into the query axis so every KV head is read once, uncopied.
    let q = q.reshape((b, n_kv, groups * t, d))?;
    let scale = 1.0 / (d as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?; // (b, n_kv, groups * t, total)
    let att = if t > 1 {
        let mask = causal_mask(t, total, start, q.device())?.to_dtype(att.dtype())?;
        att.reshape((b, n_kv, groups, t, total))?
            .broadcast_add(&mask)?
            .reshape((b, n_kv, groups * t, total))?
    } else {
        att
    };
    // The fused softmax has no backward pass; training takes the composed one.
    let att = if att.track_op() {
        candle_nn::ops::softmax(&att, candle_core::D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&att)?
    };
    let y = att.matmul(&v.contiguous()?)?; // (b, n_kv, groups * t, d)
    Ok(y.reshape((b, n_head, t, d))?)
}

/// (t, total) additive mask: query i (position start + i) sees keys 0..=start + i.
pub fn causal_mask(t: usize, total: usize, start: usize, dev: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= start + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (t, total), dev)?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written as loops over heads, queries and keys.
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        dims: (usize, usize, usize, usize, usize),
    ) -> Vec<f32> {
        let (nh, nkv, t, total, d) = dims;
        let start = total - t;
        let mut out = vec![0f32; nh * t * d];
        for h in 0..nh {
            let kh = h / (nh / nkv);
            for i in 0..t {
                let qi = &q[(h * t + i) * d..(h * t + i + 1) * d];
                let scores: Vec<f64> = (0..=start + i)
                    .map(|j| {
                        let kj = &k[(kh * total + j) * d..(kh * total + j + 1) * d];
                        qi.iter().zip(kj).map(|(a, b)| (a * b) as f64).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    let p = (s - m).exp() / z;
                    for c in 0..d {
                        out[(h * t + i) * d + c] += (p * v[(kh * total + j) * d + c] as f64) as f32;
                    }
                }
            }
        }
        out
    }

    fn check(nh: usize, nkv: usize, t: usize, total: usize) {
        let dev = Device::Cpu;
        let d = 8;
        let q = Tensor::randn(0f32, 1.0, (1, nh, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, nkv, total, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, nkv, total, d), &dev).unwrap();
        let y = scaled_dot_product_attention(&q, &k, &v, total - t).unwrap();
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = naive(&flat(&q), &flat(&k), &flat(&v), (nh, nkv, t, total, d));
        for (a, b) in flat(&y).iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "nh={nh} nkv={nkv} t={t}: {a} vs {b}");
        }
    }

    #[test]
    fn multi_head_attention_matches_naive() {
        check(4, 4, 6, 6);
        check(4, 4, 1, 9);
    }

    #[test]
    fn grouped_query_attention_matches_naive() {
        check(9, 3, 5, 5);
        check(9, 3, 3, 11);
        check(6, 1, 1, 7);
    }
}

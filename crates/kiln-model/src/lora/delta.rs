//! One adapted layer's low-rank update, `Δy = scale · (dropout(x) · Aᵀ) · Bᵀ`, added by
//! [`crate::layers::Linear`] to its frozen base output. The rank-r path is two thin
//! products, so it never forms the (out × in) matrix B·A.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::Tensor;

use crate::error::Result;

#[derive(Debug)]
pub struct LoraDelta {
    /// (r, in_features)
    a: Tensor,
    /// (out_features, r)
    b: Tensor,
    scale: f64,
    dropout: f32,
    /// Identifies this layer within its adapter, so each layer draws its own dropout mask.
    index: u64,
    /// The current step's dropout seed, shared by all layers of an adapter; 0 turns
    /// dropout off (evaluation, inference).
    dropout_seed: Arc<AtomicU64>,
}

impl LoraDelta {
    pub fn new(
        a: Tensor,
        b: Tensor,
        scale: f64,
        dropout: f32,
        index: u64,
        dropout_seed: Arc<AtomicU64>,
    ) -> Self {
        Self {
            a,
            b,
            scale,
            dropout,
            index,
            dropout_seed,
        }
    }

    pub fn a(&self) -> &Tensor {
        &self.a
    }

    pub fn b(&self) -> &Tensor {
        &self.b
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `x` (…, in) → Δy (…, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let seed = self.dropout_seed.load(Ordering::Relaxed);
        let x = if self.dropout > 0.0 && seed != 0 {
            let mask = dropout_mask(x, self.dropout, mix(seed, self.index))?;
            (x * mask)?
        } else {
            x.clone()
        };
        let h = product(&x, &self.a)?;
        Ok(product(&h, &self.b)?.affine(self.scale, 0.0)?)
    }
}

/// x (…, k) · W (n, k)ᵀ, through the differentiable op when anything tracks gradients.
fn product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(if x.track_op() || w.track_op() {
        crate::kernels::train::linear(x, w)?
    } else {
        x.broadcast_matmul(&w.t()?)?
    })
}

/// Inverted dropout's multiplier: 0 with probability p, else 1 / (1 - p). Drawn from a
/// seed alone, so recomputing a step (checkpointed backward, resume) draws the same mask.
fn dropout_mask(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let keep = 1.0 / (1.0 - p);
    let threshold = (p as f64 * (1u64 << 53) as f64) as u64;
    let mut state = seed;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            if mix(state, 0) >> 11 < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    Ok(Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)
}

/// SplitMix64's finaliser over a seed and a salt.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dropout_masks_are_reproducible_and_keep_the_expected_fraction() {
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
        let m1 = dropout_mask(&x, 0.25, 7).unwrap().flatten_all().unwrap();
        let m2 = dropout_mask(&x, 0.25, 7).unwrap().flatten_all().unwrap();
        let m3 = dropout_mask(&x, 0.25, 8).unwrap().flatten_all().unwrap();
        let (v1, v2, v3) = (
            m1.to_vec1::<f32>().unwrap(),
            m2.to_vec1::<f32>().unwrap(),
            m3.to_vec1::<f32>().unwrap(),
        );
        assert_eq!(v1, v2);
        assert_ne!(v1, v3);
        let dropped = v1.iter().filter(|&&m| m == 0.0).count();
        assert!(
            (2300..2700).contains(&dropped),
            "{dropped} of 10000 dropped"
        );
        assert!(v1.iter().all(|&m| m == 0.0 || (m - 4.0 / 3.0).abs() < 1e-6));
    }
}

//! Rotary position embeddings (Su et al., 2021) with the scalings Llama checkpoints use.

use candle_core::{DType, Device, Tensor};

use crate::config::{RopeConfig, RopeScaling, RopeStyle};
use crate::error::Result;

/// Precomputed cos/sin tables for positions `0..max_positions`.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor, // (max_positions, head_dim / 2)
    sin: Tensor,
    style: RopeStyle,
}

/// The per-pair inverse frequencies θ_i = theta^(-2i/d), after any scaling.
pub fn inverse_frequencies(cfg: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let base: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / cfg.theta.powf(2.0 * i as f32 / head_dim as f32))
        .collect();
    match &cfg.scaling {
        None => base,
        Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
        Some(RopeScaling::FreqFactors(factors)) => base
            .iter()
            .zip(factors.iter().chain(std::iter::repeat(&1.0)))
            .map(|(f, d)| f / d)
            .collect(),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            // Long wavelengths are slowed by `factor`, short ones kept, and the band between
            // interpolated smoothly (Llama 3.1 report, §3.2 / HF `_compute_llama3_parameters`).
            let old_ctx = *original_max_position_embeddings as f32;
            let low_wavelen = old_ctx / low_freq_factor;
            let high_wavelen = old_ctx / high_freq_factor;
            base.iter()
                .map(|&freq| {
                    let wavelen = 2.0 * std::f32::consts::PI / freq;
                    if wavelen < high_wavelen {
                        freq
                    } else if wavelen > low_wavelen {
                        freq / factor
                    } else {
                        let smooth = (old_ctx / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    }
                })
                .collect()
        }
    }
}

impl RotaryEmbedding {
    pub fn new(
        cfg: &RopeConfig,
        head_dim: usize,
        max_positions: usize,
        dev: &Device,
    ) -> Result<Self> {
        let inv = inverse_frequencies(cfg, head_dim);
        let half = inv.len();
        let mut angles = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            // f64 angle keeps large positions accurate before the f32 cos/sin.
            angles.extend(inv.iter().map(|&f| (p as f64 * f as f64) as f32));
        }
        let angles = Tensor::from_vec(angles, (max_positions, half), dev)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
            style: cfg.style,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotates `x` of shape (b, heads, t, head_dim) whose first position is `start`.
    pub fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, start, t)?.to_dtype(x.dtype())?;
        let sin = self.sin.narrow(0, start, t)?.to_dtype(x.dtype())?;
        let x = x.contiguous()?;
        Ok(match self.style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
        })
    }

    pub fn dtype(&self) -> DType {
        self.cos.dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(style: RopeStyle) -> RopeConfig {
        RopeConfig {
            theta: 10_000.0,
            style,
            scaling: None,
        }
    }

    /// The rotation written out per pair, as in the RoFormer paper.
    fn naive(x: &[f32], d: usize, pos: usize, style: RopeStyle) -> Vec<f32> {
        let mut out = x.to_vec();
        for i in 0..d / 2 {
            let theta = pos as f64 * 10_000f64.powf(-2.0 * i as f64 / d as f64);
            let (a, b) = match style {
                RopeStyle::Halves => (i, i + d / 2),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            };
            let (c, s) = (theta.cos() as f32, theta.sin() as f32);
            out[a] = x[a] * c - x[b] * s;
            out[b] = x[a] * s + x[b] * c;
        }
        out
    }

    #[test]
    fn matches_naive_rotation_for_both_styles() {
        let dev = Device::Cpu;
        let (h, t, d) = (2, 5, 8);
        let data: Vec<f32> = (0..h * t * d)
            .map(|i| ((i * 37 % 11) as f32) - 5.0)
            .collect();
        let x = Tensor::from_vec(data.clone(), (1, h, t, d), &dev).unwrap();
        for style in [RopeStyle::Halves, RopeStyle::Interleaved] {
            let rope = RotaryEmbedding::new(&cfg(style), d, 32, &dev).unwrap();
            let start = 3;
            let y = rope.apply(&x, start).unwrap().flatten_all().unwrap();
            let y = y.to_vec1::<f32>().unwrap();
            for hh in 0..h {
                for tt in 0..t {
                    let off = (hh * t + tt) * d;
                    let want = naive(&data[off..off + d], d, start + tt, style);
                    for k in 0..d {
                        assert!(
                            (y[off + k] - want[k]).abs() < 1e-4,
                            "{style:?} {hh} {tt} {k}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rotation_preserves_norm_and_relative_position() {
        // <R(m)q, R(n)k> depends only on m - n: RoPE's defining property.
        let dev = Device::Cpu;
        let d = 16;
        let rope = RotaryEmbedding::new(&cfg(RopeStyle::Halves), d, 64, &dev).unwrap();
        let q = Tensor::randn(0f32, 1.0, (1, 1, 1, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 1, 1, d), &dev).unwrap();
        let dot = |a: usize, b: usize| -> f32 {
            let qa = rope.apply(&q, a).unwrap();
            let kb = rope.apply(&k, b).unwrap();
            (qa * kb)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!((dot(7, 3) - dot(24, 20)).abs() < 1e-3);
        let n0 = q
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let n1 = rope
            .apply(&q, 40)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!((n0 - n1.to_scalar::<f32>().unwrap()).abs() < 1e-3);
    }

    #[test]
    fn scalings_change_only_what_they_should() {
        let mut c = cfg(RopeStyle::Halves);
        let base = inverse_frequencies(&c, 64);
        c.scaling = Some(RopeScaling::Linear { factor: 4.0 });
        let lin = inverse_frequencies(&c, 64);
        for (b, l) in base.iter().zip(&lin) {
            assert!((b / 4.0 - l).abs() < 1e-9);
        }
        c.scaling = Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        });
        let l3 = inverse_frequencies(&c, 64);
        // Highest frequency (short wavelength) untouched, lowest divided by the factor.
        assert_eq!(l3[0], base[0]);
        assert!((l3[31] - base[31] / 8.0).abs() < 1e-12);
    }
}

//! Rotary position embeddings (Su et al., 2021) with the scalings Llama checkpoints use.

use candle_core::{DType, Device, Tensor};

use crate::config::{RopeConfig, RopeScaling, RopeStyle};
use crate::error::Result;

/// Precomputed cos/sin tables for positions `0..max_positions`.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor, // (max_positions, head_dim / 2)
    sin: Tensor,
    /// The same tables as plain memory, for the inference path that rotates in place.
    cos_host: std::sync::Arc<Vec<f32>>,
    sin_host: std::sync::Arc<Vec<f32>>,
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

/// Angle of pair i at position p, computed as ggml computes it so cos/sin (and then the f16
/// keys in the cache) match llama.cpp bit for bit: θ starts at p and is multiplied by
/// `base^(-2/d)` in f32 once per pair; scalings divide by a per-pair factor and multiply
/// by a frequency scale.
fn rotation_angles(cfg: &RopeConfig, head_dim: usize, max_positions: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let theta_scale = cfg.theta.powf(-2.0 / head_dim as f32);
    let (freq_scale, factors): (f32, Vec<f32>) = match &cfg.scaling {
        None => (1.0, vec![1.0; half]),
        Some(RopeScaling::Linear { factor }) => (1.0 / factor, vec![1.0; half]),
        Some(RopeScaling::FreqFactors(f)) => (
            1.0,
            (0..half)
                .map(|i| f.get(i).copied().unwrap_or(1.0))
                .collect(),
        ),
        Some(RopeScaling::Llama3 { .. }) => {
            let plain = RopeConfig {
                scaling: None,
                ..cfg.clone()
            };
            let base = inverse_frequencies(&plain, head_dim);
            let scaled = inverse_frequencies(cfg, head_dim);
            (1.0, base.iter().zip(&scaled).map(|(b, s)| b / s).collect())
        }
    };
    let mut angles = Vec::with_capacity(max_positions * half);
    for p in 0..max_positions {
        let mut theta = p as f32;
        for ff in &factors {
            angles.push(freq_scale * (theta / ff));
            theta *= theta_scale;
        }
    }
    angles
}

impl RotaryEmbedding {
    pub fn new(
        cfg: &RopeConfig,
        head_dim: usize,
        max_positions: usize,
        dev: &Device,
    ) -> Result<Self> {
        let angles = rotation_angles(cfg, head_dim, max_positions);
        let half = head_dim / 2;
        let cos_host: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin_host: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        Ok(Self {
            cos: Tensor::from_slice(&cos_host, (max_positions, half), dev)?,
            sin: Tensor::from_slice(&sin_host, (max_positions, half), dev)?,
            cos_host: cos_host.into(),
            sin_host: sin_host.into(),
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
        // candle's fused rope ops have no backward pass; training takes the composed form.
        Ok(match (self.style, x.track_op()) {
            (RopeStyle::Halves, false) => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
            (RopeStyle::Halves, true) => candle_nn::rotary_emb::rope_slow(&x, &cos, &sin)?,
            (RopeStyle::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
            (RopeStyle::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin)?,
        })
    }

    /// Rotates, in place, `x` laid out (b, t, heads, head_dim) whose first position is
    /// `start`.
    pub fn rotate_in_place(&self, x: &mut [f32], t: usize, heads: usize, start: usize) {
        let half = self.cos.dims()[1];
        let d = 2 * half;
        for (n, v) in x.chunks_exact_mut(d).enumerate() {
            let pos = start + (n / heads) % t;
            let cos = &self.cos_host[pos * half..(pos + 1) * half];
            let sin = &self.sin_host[pos * half..(pos + 1) * half];
            for i in 0..half {
                let (a, b) = match self.style {
                    RopeStyle::Halves => (i, i + half),
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                };
                let (x0, x1) = (v[a], v[b]);
                // Fused as GCC fuses ggml's `x0*cos - x1*sin` and `x0*sin + x1*cos`, so
                // the rotated keys round to the same f16 values as in llama.cpp's cache.
                v[a] = x0.mul_add(cos[i], -(x1 * sin[i]));
                v[b] = x0.mul_add(sin[i], x1 * cos[i]);
            }
        }
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
    fn in_place_rotation_of_token_major_layout_matches_naive() {
        let (b, t, h, d) = (2, 3, 2, 8);
        let data: Vec<f32> = (0..b * t * h * d)
            .map(|i| ((i * 29 % 13) as f32) - 6.0)
            .collect();
        for style in [RopeStyle::Halves, RopeStyle::Interleaved] {
            let rope = RotaryEmbedding::new(&cfg(style), d, 32, &Device::Cpu).unwrap();
            let mut x = data.clone();
            rope.rotate_in_place(&mut x, t, h, 5);
            for (n, v) in x.chunks(d).enumerate() {
                let pos = 5 + (n / h) % t;
                let want = naive(&data[n * d..(n + 1) * d], d, pos, style);
                for k in 0..d {
                    assert!((v[k] - want[k]).abs() < 1e-4, "{style:?} row {n} [{k}]");
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

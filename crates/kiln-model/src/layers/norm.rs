//! RMSNorm (Zhang & Sennrich, 2019): x / sqrt(mean(x²) + eps) · g.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Module, Shape, Tensor};

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self {
            weight,
            eps: eps as f32,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Module::forward(self, x)?)
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        if x.track_op() || self.weight.track_op() {
            crate::kernels::train::rms_norm(&x, &self.weight, self.eps as f64)
        } else if x.dtype() == candle_core::DType::F32 && x.device().is_cpu() {
            x.apply_op2_no_bwd(&self.weight, &GgmlRmsNorm { eps: self.eps })
        } else {
            candle_nn::ops::rms_norm(&x, &self.weight, self.eps)
        }
    }
}

/// RMSNorm rounded as ggml rounds it: squares summed in f64, `x · (1 / sqrt(mean + eps))`
/// then `· g`. The last-ulp differences of other orderings are enough to flip some int8
/// roundings of the next layer's activations and drift from llama.cpp.
struct GgmlRmsNorm {
    eps: f32,
}

impl CustomOp2 for GgmlRmsNorm {
    fn name(&self) -> &'static str {
        "kiln-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (xs, ws) else {
            candle_core::bail!("kiln-rms-norm: expected f32, got {:?}", xs.dtype())
        };
        let (Some((x0, x1)), Some((w0, w1))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("kiln-rms-norm: inputs must be contiguous")
        };
        let (x, w) = (&x[x0..x1], &w[w0..w1]);
        let n = w.len();
        if n == 0 || xl.shape().dims().last() != Some(&n) {
            candle_core::bail!("kiln-rms-norm: {:?} does not end in {n}", xl.shape())
        }
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            let sum: f64 = xr.iter().map(|v| (v * v) as f64).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            for ((yv, xv), g) in yr.iter_mut().zip(xr).zip(w) {
                *yv = (xv * scale) * g;
            }
        }
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }
}

/// LayerNorm (Ba et al., 2016): (x - mean) / sqrt(var + eps) · g + b, GPT-2's norm.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self {
            weight,
            bias,
            eps: eps as f32,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Module::forward(self, x)?)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let (w, b) = (&self.weight, &self.bias);
        if x.track_op() || w.track_op() || b.track_op() {
            crate::kernels::train::layer_norm(&x, w, b, self.eps as f64)
        } else {
            candle_nn::ops::layer_norm(&x, w, b, self.eps)
        }
    }
}

/// The norm a model's configuration chose.
#[derive(Debug, Clone)]
pub enum Norm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Rms(n) => n.forward(x),
            Norm::Layer(n) => n.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_naive_formula() {
        let dev = Device::Cpu;
        let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.7).collect();
        let g: Vec<f32> = (0..6).map(|i| 0.5 + i as f32 * 0.25).collect();
        let norm = RmsNorm::new(Tensor::from_vec(g.clone(), 6, &dev).unwrap(), 1e-5);
        let y = norm
            .forward(&Tensor::from_vec(x.clone(), (2, 6), &dev).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for r in 0..2 {
            let row = &x[r * 6..r * 6 + 6];
            let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / 6.0;
            let inv = 1.0 / (ms + 1e-5).sqrt();
            for c in 0..6 {
                let want = (row[c] as f64 * inv * g[c] as f64) as f32;
                assert!((y[r * 6 + c] - want).abs() < 1e-5, "{r} {c}");
            }
        }
    }
}

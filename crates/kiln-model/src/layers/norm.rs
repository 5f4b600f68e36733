//! RMSNorm (Zhang & Sennrich, 2019): x / sqrt(mean(x²) + eps) · g.

use candle_core::{Module, Tensor};

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
        Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?)
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.weight, self.eps)
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

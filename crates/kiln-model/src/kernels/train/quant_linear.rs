//! y = x·Wᵀ through a frozen GGUF-quantized W (QLoRA's base layers): the forward is the
//! inference kernel, the backward gives only dx = dy·W, with W dequantized for the one
//! product and dropped again, so the base never sits in memory as f32.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::linear::product;
use super::real::borrow;
use crate::kernels::qmatmul::{QuantMatmulOp, QuantMatrix};

pub struct FrozenQuantLinearOp(pub Arc<QuantMatrix>);

impl CustomOp1 for FrozenQuantLinearOp {
    fn name(&self) -> &'static str {
        "kiln-frozen-quant-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        QuantMatmulOp(&self.0).cpu_fwd(s, l)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, k) = self.0.dims();
        let rows = x.elem_count() / k.max(1);
        let w = self.0.dequantize();
        let dy = dy.contiguous()?;
        let dyb = borrow(&dy);
        let dx = product((rows, k, n), dyb.slice::<f32>()?, (n, 1), &w, (k, 1));
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;
    use crate::kernels::blocks::{QuantKind, QK};

    /// dx of the frozen quantized product equals dy · W with W dequantized block by block
    /// and the sum taken in f64, for Q8_0 and Q4_1; no gradient is produced for anything
    /// else, and the forward is the inference kernel's.
    #[test]
    fn input_gradient_is_dy_times_the_dequantized_weight() {
        let (n, k, rows) = (24, 64, 5);
        for kind in [QuantKind::Q8_0, QuantKind::Q4_1] {
            let mut data = Vec::new();
            for i in 0..n * k / QK {
                data.extend_from_slice(&half::f16::from_f32(0.01 + i as f32 * 1e-4).to_le_bytes());
                if kind == QuantKind::Q4_1 {
                    data.extend_from_slice(&half::f16::from_f32(-0.05).to_le_bytes());
                }
                let payload = kind.block_bytes() - data.len() % kind.block_bytes();
                data.extend((0..payload).map(|j| ((i * 13 + j * 7) % 255) as u8));
            }
            let w = Arc::new(QuantMatrix::new(kind, n, k, data).unwrap());
            let xs: Vec<f32> = (0..rows * k)
                .map(|i| ((i % 19) as f32 - 9.0) / 7.0)
                .collect();
            let x = Var::from_tensor(&Tensor::from_vec(xs, (1, rows, k), &Device::Cpu).unwrap())
                .unwrap();
            let y = crate::kernels::train::frozen_quant_linear(x.as_tensor(), &w).unwrap();
            let plain = w.matmul(
                &x.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                rows,
            );
            assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), plain);
            let r: Vec<f32> = (0..rows * n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let rt = Tensor::from_vec(r.clone(), (1, rows, n), &Device::Cpu).unwrap();
            let grads = (y * rt).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            let dx = dx.to_vec1::<f32>().unwrap();
            let wd = w.dequantize();
            for i in 0..rows {
                for c in 0..k {
                    let want: f64 = (0..n)
                        .map(|j| r[i * n + j] as f64 * wd[j * k + c] as f64)
                        .sum();
                    let got = dx[i * k + c] as f64;
                    assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "{kind:?}");
                }
            }
        }
    }
}

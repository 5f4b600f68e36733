//! GPT-2's MLP, down(gelu(up(x))), as one graph node. The hidden activations are the
//! largest tensors of a small model's step (4x the width); as three nodes each would get a
//! zero-filled gradient buffer and an add in candle's backward, and the GELU its own pass.
//! Forward keeps the pre-activation h = x·Uᵀ and the activation gelu(h) for backward:
//!
//! dD = dyᵀ·gelu(h), dh = (dy·D) ⊙ gelu'(h), dU = dhᵀ·x, dx = dh·U.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::gelu::{gelu_bwd, gelu_fwd};
use super::linear::product;
use super::real::{borrow, Real};

/// x (…, d) with U (f, d) and D (d, f) → (…, d).
#[derive(Default)]
pub struct GeluMlpOp {
    /// h = x·Uᵀ and gelu(h) from the forward pass, for backward.
    hidden: Mutex<Option<(CpuStorage, CpuStorage)>>,
}

fn rows(shape: &Shape, d: usize) -> candle_core::Result<usize> {
    match shape.dims().last() {
        Some(&last) if last == d => Ok(shape.elem_count() / d.max(1)),
        _ => candle_core::bail!("gelu mlp: input {shape:?} does not end in {d}"),
    }
}

impl CustomOp3 for GeluMlpOp {
    fn name(&self) -> &'static str {
        "kiln-gelu-mlp-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (f, d) = ul.shape().dims2()?;
        if dl.shape().dims2()? != (d, f) {
            candle_core::bail!("gelu mlp: up {:?} and down {:?}", ul.shape(), dl.shape())
        }
        let n = rows(xl.shape(), d)?;
        fn run<T: Real>(
            s: [(&CpuStorage, &Layout); 3],
            (n, d, f): (usize, usize, usize),
        ) -> candle_core::Result<(CpuStorage, (CpuStorage, CpuStorage))> {
            let x = T::slice(s[0].0, s[0].1, "gelu mlp")?;
            let u = T::slice(s[1].0, s[1].1, "gelu mlp")?;
            let dn = T::slice(s[2].0, s[2].1, "gelu mlp")?;
            let h = product((n, f, d), x, (d, 1), u, (1, d));
            let a = gelu_fwd(&h);
            let y = product((n, d, f), &a, (f, 1), dn, (1, f));
            Ok((T::storage(y), (T::storage(h), T::storage(a))))
        }
        let s = [(xs, xl), (us, ul), (ds, dl)];
        let (y, kept) = match xs {
            CpuStorage::F64(_) => run::<f64>(s, (n, d, f))?,
            _ => run::<f32>(s, (n, d, f))?,
        };
        if let Ok(mut slot) = self.hidden.lock() {
            *slot = Some(kept);
        }
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        u: &Tensor,
        dn: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (f, d) = u.dims2()?;
        let n = rows(x.shape(), d)?;
        // Kept (not taken) so a second backward over the same graph still works.
        let guard = self
            .hidden
            .lock()
            .map_err(|_| candle_core::Error::Msg("gelu mlp: poisoned".into()))?;
        let Some(hidden) = guard.as_ref() else {
            candle_core::bail!("gelu mlp: backward without a forward pass")
        };
        fn run<T: Real>(
            [x, u, dn, dy]: [&Tensor; 4],
            (hidden, act): &(CpuStorage, CpuStorage),
            (n, d, f): (usize, usize, usize),
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let c = [
                x.contiguous()?,
                u.contiguous()?,
                dn.contiguous()?,
                dy.contiguous()?,
            ];
            let b = [borrow(&c[0]), borrow(&c[1]), borrow(&c[2]), borrow(&c[3])];
            let (xs, us, dns, dys) = (
                b[0].slice::<T>()?,
                b[1].slice::<T>()?,
                b[2].slice::<T>()?,
                b[3].slice::<T>()?,
            );
            let h = T::slice(hidden, &Layout::contiguous(n * f), "gelu mlp")?;
            let a = T::slice(act, &Layout::contiguous(n * f), "gelu mlp")?;
            let d_down = product((d, f, n), dys, (1, d), a, (f, 1));
            let da = product((n, f, d), dys, (d, 1), dns, (f, 1));
            let dh = gelu_bwd(h, &da);
            let d_up = product((f, d, n), &dh, (1, f), xs, (d, 1));
            let dx = product((n, d, f), &dh, (f, 1), us, (d, 1));
            Ok((
                Some(Tensor::from_vec(dx, x.shape(), x.device())?),
                Some(Tensor::from_vec(d_up, u.shape(), u.device())?),
                Some(Tensor::from_vec(d_down, dn.shape(), dn.device())?),
            ))
        }
        match x.dtype() {
            candle_core::DType::F64 => run::<f64>([x, u, dn, dy], hidden, (n, d, f)),
            _ => run::<f32>([x, u, dn, dy], hidden, (n, d, f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::super::testing::assert_same_value_and_grads;
    use super::super::{gelu, gelu_mlp, linear};

    /// Against the three separate nodes (linear, GELU, linear), value and gradients in f64,
    /// at a size whose products split over the worker pool.
    #[test]
    fn fused_mlp_matches_the_composed_one() {
        let dev = Device::Cpu;
        let v = |shape: &[usize]| {
            Var::from_tensor(&Tensor::randn(0f64, 0.5, shape, &dev).unwrap()).unwrap()
        };
        let (x, up, down) = (v(&[2, 40, 32]), v(&[128, 32]), v(&[32, 128]));
        let r = Tensor::randn(0f64, 1.0, (2, 40, 32), &dev).unwrap();
        let fused = gelu_mlp(x.as_tensor(), up.as_tensor(), down.as_tensor()).unwrap();
        let h = linear(x.as_tensor(), up.as_tensor()).unwrap();
        let composed = linear(&gelu(&h).unwrap(), down.as_tensor()).unwrap();
        assert_same_value_and_grads(&fused, &composed, &r, &[&x, &up, &down]);
    }
}

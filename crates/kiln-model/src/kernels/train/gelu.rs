//! The exact GELU, x·Φ(x) = ½·x·(1 + erf(x/√2)) (PyTorch's `nn.GELU()`), and its
//! derivative Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π), elementwise on candle's worker pool.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::real::{borrow, Real, SharedOut};

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1/√(2π)
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Splits `n` elements into chunks for the pool and runs `f(range)` on each.
fn par_chunks(n: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    const CHUNK: usize = 16 * 1024;
    let tasks = n.div_ceil(CHUNK);
    if tasks <= 1 {
        return f(0..n);
    }
    candle_core::utils::barrier_pool().execute_chunked(tasks, |ts| {
        for t in ts {
            f(t * CHUNK..n.min((t + 1) * CHUNK));
        }
    });
}

pub(super) fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    let out = SharedOut(y.as_mut_ptr());
    par_chunks(x.len(), |r| {
        // SAFETY: the ranges of different tasks are disjoint and inside the capacity.
        let y = unsafe { out.zeroed(r.start, r.len()) };
        lanes::fwd(&x[r], y);
    });
    // SAFETY: the chunks covered every element.
    unsafe { y.set_len(x.len()) };
    y
}

pub(super) fn gelu_bwd<T: Real>(x: &[T], dy: &[T]) -> Vec<T> {
    let mut dx = Vec::with_capacity(x.len());
    let out = SharedOut(dx.as_mut_ptr());
    par_chunks(x.len(), |r| {
        // SAFETY: the ranges of different tasks are disjoint and inside the capacity.
        let dx = unsafe { out.zeroed(r.start, r.len()) };
        lanes::bwd(&x[r.clone()], &dy[r], dx);
    });
    // SAFETY: the chunks covered every element.
    unsafe { dx.set_len(x.len()) };
    dx
}

mod lanes {
    use super::*;

    #[inline(always)]
    fn fwd_lanes<T: Real>(x: &[T], y: &mut [T]) {
        let (half, s) = (T::of(0.5), T::of(FRAC_1_SQRT_2));
        for (yv, xv) in y.iter_mut().zip(x) {
            *yv = half * *xv * (T::ONE + (*xv * s).erf());
        }
    }

    #[inline(always)]
    fn bwd_lanes<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
        let (half, s, c) = (T::of(0.5), T::of(FRAC_1_SQRT_2), T::of(FRAC_1_SQRT_2PI));
        for ((d, xv), g) in dx.iter_mut().zip(x).zip(dy) {
            let x = *xv;
            let cdf = half * (T::ONE + (x * s).erf());
            let pdf = c * (-(half * x * x)).exp();
            *d = *g * (cdf + x * pdf);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fwd_fma<T: Real>(x: &[T], y: &mut [T]) {
        fwd_lanes(x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bwd_fma<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
        bwd_lanes(x, dy, dx)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn fwd_avx512<T: Real>(x: &[T], y: &mut [T]) {
        fwd_lanes(x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn bwd_avx512<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
        bwd_lanes(x, dy, dx)
    }

    pub fn fwd<T: Real>(x: &[T], y: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx512() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            return unsafe { fwd_avx512(x, y) };
        }
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { fwd_fma(x, y) };
        }
        fwd_lanes(x, y)
    }

    pub fn bwd<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx512() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            return unsafe { bwd_avx512(x, dy, dx) };
        }
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { bwd_fma(x, dy, dx) };
        }
        bwd_lanes(x, dy, dx)
    }
}

pub struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "kiln-gelu-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F64(_) => f64::storage(gelu_fwd(f64::slice(s, l, self.name())?)),
            _ => f32::storage(gelu_fwd(f32::slice(s, l, self.name())?)),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (x, dy) = (x.contiguous()?, dy.contiguous()?);
        let (xb, dyb) = (borrow(&x), borrow(&dy));
        let dx = match x.dtype() {
            candle_core::DType::F64 => {
                let dx = gelu_bwd(xb.slice::<f64>()?, dyb.slice::<f64>()?);
                Tensor::from_vec(dx, x.shape(), x.device())?
            }
            _ => {
                let dx = gelu_bwd(xb.slice::<f32>()?, dyb.slice::<f32>()?);
                Tensor::from_vec(dx, x.shape(), x.device())?
            }
        };
        Ok(Some(dx))
    }
}

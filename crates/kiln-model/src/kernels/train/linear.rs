//! y = x·Wᵀ as one graph node with its backward written out, dx = dy·W and dW = dyᵀ·x,
//! each a single `gemm` call on the operands in place. Composed from candle ops the same
//! product is a reshape, a transpose and a matmul node, and candle's backward gives each
//! node a zero-filled gradient buffer and an extra add; at a small model's sizes those
//! passes over memory cost as much as the products.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::real::{borrow, Real};

/// `dst (m × n) = a (m × k) · b (k × n)` with the given (row, column) strides of a and b,
/// on `threads` threads.
#[allow(clippy::too_many_arguments)]
fn product<T: Real>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
) -> Vec<T> {
    assert!(
        m == 0
            || n == 0
            || k == 0
            || ((m - 1) * a_rs + (k - 1) * a_cs < a.len()
                && (k - 1) * b_rs + (n - 1) * b_cs < b.len())
    );
    let mut dst: Vec<T> = Vec::with_capacity(m * n);
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 && m * n * k >= 1 << 16 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the operands are in bounds (checked above) and gemm writes every element of
    // dst without reading it (read_dst = false) before the length is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
        dst.set_len(m * n);
    }
    dst
}

/// x (rows, in) · W (out, in)ᵀ → (rows, out).
pub struct LinearOp;

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "kiln-linear-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, k) = xl.shape().dims2()?;
        let (out, wk) = wl.shape().dims2()?;
        if wk != k {
            candle_core::bail!(
                "linear: input {:?} against weight {:?}",
                xl.shape(),
                wl.shape()
            )
        }
        fn run<T: Real>(
            s: [(&CpuStorage, &Layout); 2],
            (rows, k, out): (usize, usize, usize),
        ) -> candle_core::Result<CpuStorage> {
            let x = T::slice(s[0].0, s[0].1, "linear")?;
            let w = T::slice(s[1].0, s[1].1, "linear")?;
            Ok(T::storage(product((rows, out, k), x, (k, 1), w, (1, k))))
        }
        let s = [(xs, xl), (ws, wl)];
        let y = match xs {
            CpuStorage::F64(_) => run::<f64>(s, (rows, k, out))?,
            _ => run::<f32>(s, (rows, k, out))?,
        };
        Ok((y, Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, k) = x.dims2()?;
        let out = w.dim(0)?;
        fn run<T: Real>(
            [x, w, dy]: [&Tensor; 3],
            (rows, k, out): (usize, usize, usize),
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            let (x, w, dy) = (x.contiguous()?, w.contiguous()?, dy.contiguous()?);
            let (xb, wb, dyb) = (borrow(&x), borrow(&w), borrow(&dy));
            let (xh, wh, dyh) = (xb.slice::<T>()?, wb.slice::<T>()?, dyb.slice::<T>()?);
            let dx = product((rows, k, out), dyh, (out, 1), wh, (k, 1));
            let dw = product((out, k, rows), dyh, (1, out), xh, (k, 1));
            Ok((
                Some(Tensor::from_vec(dx, x.shape(), x.device())?),
                Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            ))
        }
        match x.dtype() {
            candle_core::DType::F64 => run::<f64>([x, w, dy], (rows, k, out)),
            _ => run::<f32>([x, w, dy], (rows, k, out)),
        }
    }
}

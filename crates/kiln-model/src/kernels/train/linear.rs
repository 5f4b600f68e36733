//! y = x·Wᵀ as one graph node with its backward written out, dx = dy·W and dW = dyᵀ·x,
//! each a single `gemm` call on the operands in place. Composed from candle ops the same
//! product is a reshape, a transpose and a matmul node, and candle's backward gives each
//! node a zero-filled gradient buffer and an extra add; at a small model's sizes those
//! passes over memory cost as much as the products.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::real::{borrow, Real, SharedOut};

/// `dst (m × n) = a (m × k) · b (k × n)` with the given (row, column) strides of a and b.
/// Blocks of dst rows go to candle's worker pool, one single-threaded gemm each: the same
/// pool as every other op of the step, where gemm's own rayon threads would spin against
/// it for the two cores.
pub(super) fn product<T: Real>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
) -> Vec<T> {
    let in_bounds = m == 0
        || n == 0
        || k == 0
        || ((m - 1) * a_rs + (k - 1) * a_cs < a.len() && (k - 1) * b_rs + (n - 1) * b_cs < b.len());
    assert!(in_bounds, "linear: operands out of bounds");
    let mut dst: Vec<T> = Vec::with_capacity(m * n);
    let out = SharedOut(dst.as_mut_ptr());
    let threads = candle_core::utils::get_num_threads();
    // Below this many multiply-adds a second thread costs more than it saves.
    let tasks = if m * n * k >= 1 << 18 {
        threads.min(m).max(1)
    } else {
        1
    };
    let rows = m.div_ceil(tasks.max(1)).max(1);
    let block = |t: usize| {
        let r0 = (t * rows).min(m);
        let r1 = ((t + 1) * rows).min(m);
        if r0 == r1 {
            return;
        }
        // SAFETY: the operands are in bounds (checked above); each task writes its own
        // rows of dst, every element of them, without reading (read_dst = false).
        unsafe {
            gemm::gemm(
                r1 - r0,
                n,
                k,
                out.ptr().add(r0 * n),
                1,
                n as isize,
                false,
                a.as_ptr().add(r0 * a_rs),
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
                gemm::Parallelism::None,
            )
        }
    };
    if tasks <= 1 {
        block(0);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(tasks, |ts| ts.for_each(block));
    }
    // SAFETY: the blocks covered all m rows.
    unsafe { dst.set_len(m * n) };
    dst
}

/// x (…, in) · W (out, in)ᵀ → (…, out). Leading axes are read as rows in place, so no
/// reshape nodes (each another zeroed gradient and add in backward) surround the product.
pub struct LinearOp;

/// (rows, in) of an input of shape (…, in).
fn rows_and_width(shape: &Shape) -> candle_core::Result<(usize, usize)> {
    let dims = shape.dims();
    let Some(&k) = dims.last() else {
        candle_core::bail!("linear: a scalar input")
    };
    Ok((dims[..dims.len() - 1].iter().product(), k))
}

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
        let (rows, k) = rows_and_width(xl.shape())?;
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
        let mut dims = xl.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((y, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, k) = rows_and_width(x.shape())?;
        let out = w.dim(0)?;
        fn run<T: Real>(
            [x, w, dy]: [&Tensor; 3],
            (rows, k, out): (usize, usize, usize),
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            let (x, w, dy) = (x.contiguous()?, w.contiguous()?, dy.contiguous()?);
            let (xb, wb, dyb) = (borrow(&x), borrow(&w), borrow(&dy));
            let (xh, wh, dyh) = (xb.slice::<T>()?, wb.slice::<T>()?, dyb.slice::<T>()?);
            // A frozen operand (a LoRA base weight, the first layer's input) gets no
            // gradient: that product would be half the backward's work, thrown away.
            let dx = x
                .track_op()
                .then(|| product((rows, k, out), dyh, (out, 1), wh, (k, 1)));
            let dw = w
                .track_op()
                .then(|| product((out, k, rows), dyh, (1, out), xh, (k, 1)));
            Ok((
                dx.map(|d| Tensor::from_vec(d, x.shape(), x.device()))
                    .transpose()?,
                dw.map(|d| Tensor::from_vec(d, w.shape(), w.device()))
                    .transpose()?,
            ))
        }
        match x.dtype() {
            candle_core::DType::F64 => run::<f64>([x, w, dy], (rows, k, out)),
            _ => run::<f32>([x, w, dy], (rows, k, out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::super::testing::assert_same_value_and_grads;

    /// Large enough to split over the worker pool: value and gradients against candle's
    /// matmul, in f64.
    #[test]
    fn split_products_match_candles_matmul() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (2, 35, 64), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (72, 64), &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f64, 1.0, (2, 35, 72), &dev).unwrap();
        let ours = super::super::linear(x.as_tensor(), w.as_tensor()).unwrap();
        let theirs = x
            .as_tensor()
            .broadcast_matmul(&w.as_tensor().t().unwrap())
            .unwrap();
        assert_same_value_and_grads(&ours, &theirs, &r, &[&x, &w]);
    }
}

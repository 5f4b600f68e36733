//! Mean next-token cross-entropy of (n, vocab) logits against n target ids, fused:
//! -mean(logits[i, y_i] - logsumexp(logits[i])); backward (softmax - onehot) / n.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::real::Real;

pub struct CrossEntropyOp;

/// Row i's softmax into `p`; returns logsumexp.
#[inline(always)]
fn softmax_row<T: Real>(x: &[T], p: &mut [T]) -> T {
    let max = x
        .iter()
        .fold(T::of(f64::NEG_INFINITY), |m, v| if *v > m { *v } else { m });
    let mut z = T::ZERO;
    for (pv, xv) in p.iter_mut().zip(x) {
        *pv = (*xv - max).exp();
        z += *pv;
    }
    let inv = T::ONE / z;
    for pv in p.iter_mut() {
        *pv *= inv;
    }
    max + T::of(z.to_f64().ln())
}

/// Σ over rows of logsumexp(row) - row[target].
#[inline(always)]
fn loss_sum_lanes<T: Real>(x: &[T], ids: &[usize], vocab: usize) -> f64 {
    let mut p = vec![T::ZERO; vocab];
    let mut sum = 0f64;
    for (row, y) in x.chunks_exact(vocab).zip(ids) {
        let lse = softmax_row(row, &mut p);
        sum += (lse - row[*y]).to_f64();
    }
    sum
}

/// Turns the logits in `dx` into (softmax - onehot)·g, row by row.
#[inline(always)]
fn grad_lanes<T: Real>(dx: &mut [T], ids: &[u32], vocab: usize, g: T) {
    let mut logits = vec![T::ZERO; vocab];
    for (row, y) in dx.chunks_exact_mut(vocab).zip(ids) {
        logits.copy_from_slice(row);
        softmax_row(&logits, row);
        row[*y as usize] -= T::ONE;
        for v in row.iter_mut() {
            *v *= g;
        }
    }
}

// With FMA enabled the exponential's mul_adds are instructions; without it each one is a
// call into libm's software fmaf.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn loss_sum_fma<T: Real>(x: &[T], ids: &[usize], vocab: usize) -> f64 {
    loss_sum_lanes(x, ids, vocab)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_fma<T: Real>(dx: &mut [T], ids: &[u32], vocab: usize, g: T) {
    grad_lanes(dx, ids, vocab, g)
}

fn loss_sum<T: Real>(x: &[T], ids: &[usize], vocab: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::dot::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { loss_sum_fma(x, ids, vocab) };
    }
    loss_sum_lanes(x, ids, vocab)
}

fn grad<T: Real>(dx: &mut [T], ids: &[u32], vocab: usize, g: T) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::dot::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { grad_fma(dx, ids, vocab, g) };
    }
    grad_lanes(dx, ids, vocab, g)
}

fn targets(s: &CpuStorage, l: &Layout, n: usize, vocab: usize) -> candle_core::Result<Vec<usize>> {
    let ids: Vec<usize> = match s {
        CpuStorage::U32(v) => v.iter().map(|x| *x as usize).collect(),
        CpuStorage::I64(v) => v.iter().map(|x| *x as usize).collect(),
        other => candle_core::bail!(
            "cross-entropy: targets must be u32 or i64, got {:?}",
            other.dtype()
        ),
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("cross-entropy: targets must be contiguous")
    };
    let ids = ids[a..b].to_vec();
    if ids.len() != n {
        candle_core::bail!("cross-entropy: {} targets for {n} rows", ids.len())
    }
    if let Some(bad) = ids.iter().find(|y| **y >= vocab) {
        candle_core::bail!("cross-entropy: target {bad} outside a vocabulary of {vocab}")
    }
    Ok(ids)
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "kiln-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = xl.shape().dims2()?;
        let ids = targets(ys, yl, n, vocab)?;
        fn run<T: Real>(x: &[T], ids: &[usize], vocab: usize) -> CpuStorage {
            let sum = loss_sum(x, ids, vocab);
            T::storage(vec![T::of(sum / ids.len().max(1) as f64)])
        }
        let out = match xs {
            CpuStorage::F64(_) => run(f64::slice(xs, xl, self.name())?, &ids, vocab),
            _ => run(f32::slice(xs, xl, self.name())?, &ids, vocab),
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _loss: &Tensor,
        dloss: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, vocab) = x.dims2()?;
        let ids: Vec<u32> = y.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?;
        fn run<T: Real>(
            x: &Tensor,
            ids: &[u32],
            dloss: &Tensor,
            n: usize,
            vocab: usize,
        ) -> candle_core::Result<Tensor> {
            let g = dloss.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()?[0]
                * T::of(1.0 / n.max(1) as f64);
            let mut dx = x.flatten_all()?.to_vec1::<T>()?;
            grad(&mut dx, ids, vocab, g);
            Tensor::from_vec(dx, x.shape(), x.device())
        }
        let dx = match x.dtype() {
            DType::F64 => run::<f64>(x, &ids, dloss, n, vocab)?,
            _ => run::<f32>(x, &ids, dloss, n, vocab)?,
        };
        Ok((Some(dx), None))
    }
}

//! LayerNorm and RMSNorm over the last axis with their backward passes written out:
//! forward keeps nothing, backward recomputes each row's mean and 1/σ.
//!
//! With x̂ = (x - μ)·r, r = 1/sqrt(var + ε), y = x̂·g (+ b) and upstream gradient dy:
//! dg = Σ_rows dy·x̂, db = Σ_rows dy, and with d = dy·g,
//! dx = r·(d - mean(d) - x̂·mean(d·x̂)) for LayerNorm, r·(d - x̂·mean(d·x̂)) for RMSNorm
//! (where μ = 0 and r = 1/sqrt(mean(x²) + ε)).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::real::{borrow, Real, SharedOut};

/// (μ, r) of one row.
#[inline(always)]
fn row_stats<T: Real>(x: &[T], eps: T, centred: bool) -> (T, T) {
    let n = T::of(x.len() as f64);
    let mean = if centred {
        x.iter().fold(T::ZERO, |s, v| s + *v) / n
    } else {
        T::ZERO
    };
    let var = x.iter().fold(T::ZERO, |s, v| s + (*v - mean) * (*v - mean)) / n;
    (mean, T::ONE / (var + eps).sqrt())
}

fn forward<T: Real>(x: &[T], g: &[T], b: Option<&[T]>, eps: f64, centred: bool) -> Vec<T> {
    let n = g.len();
    let mut y = Vec::with_capacity(x.len());
    let out = SharedOut(y.as_mut_ptr());
    let rows = x.len() / n;
    for_row_chunks(rows, |r| {
        // SAFETY: row chunks of different tasks are disjoint and inside the capacity.
        let y = unsafe { out.zeroed(r.start * n, r.len() * n) };
        let x = &x[r.start * n..r.end * n];
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { forward_fma(x, g, b, eps, centred, y) };
        }
        forward_lanes(x, g, b, eps, centred, y)
    });
    // SAFETY: the row chunks covered every row (x.len() is a multiple of n).
    unsafe { y.set_len(rows * n) };
    y
}

/// Runs `f` over chunks of `rows` rows on candle's worker pool.
fn for_row_chunks(rows: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    const ROWS: usize = 64;
    let tasks = rows.div_ceil(ROWS);
    if tasks <= 1 {
        return f(0..rows);
    }
    candle_core::utils::barrier_pool().execute_chunked(tasks, |ts| {
        for t in ts {
            f(t * ROWS..rows.min((t + 1) * ROWS));
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_fma<T: Real>(
    x: &[T],
    g: &[T],
    b: Option<&[T]>,
    eps: f64,
    centred: bool,
    y: &mut [T],
) {
    forward_lanes(x, g, b, eps, centred, y)
}

#[inline(always)]
fn forward_lanes<T: Real>(x: &[T], g: &[T], b: Option<&[T]>, eps: f64, centred: bool, y: &mut [T]) {
    let n = g.len();
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let (mean, r) = row_stats(xr, T::of(eps), centred);
        for c in 0..n {
            yr[c] = (xr[c] - mean) * r * g[c] + b.map_or(T::ZERO, |b| b[c]);
        }
    }
}

/// (dx, dg, db).
type NormGrads<T> = (Vec<T>, Vec<T>, Vec<T>);

/// Rows go to tasks in chunks; each chunk sums its own dg and db, added up at the end.
fn backward<T: Real>(x: &[T], g: &[T], dy: &[T], eps: f64, centred: bool) -> NormGrads<T> {
    const ROWS: usize = 64;
    let n = g.len();
    let rows = x.len() / n;
    let chunks = rows.div_ceil(ROWS).max(1);
    let mut dx = Vec::with_capacity(rows * n);
    let mut partial = vec![T::ZERO; chunks * 2 * n];
    let (dx_out, part_out) = (SharedOut(dx.as_mut_ptr()), SharedOut(partial.as_mut_ptr()));
    let chunk = |c: usize| {
        let r = c * ROWS..rows.min((c + 1) * ROWS);
        // SAFETY: chunk c owns its rows of dx and its slot of the partial sums.
        let dx = unsafe { dx_out.zeroed(r.start * n, r.len() * n) };
        let (dg, db) = unsafe { part_out.slice(c * 2 * n, 2 * n) }.split_at_mut(n);
        let (x, dy) = (&x[r.start * n..r.end * n], &dy[r.start * n..r.end * n]);
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dot::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { backward_fma(x, g, dy, eps, centred, [dx, dg, db]) };
        }
        backward_lanes(x, g, dy, eps, centred, [dx, dg, db])
    };
    if chunks == 1 {
        chunk(0);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(chunks, |cs| cs.for_each(chunk));
    }
    // SAFETY: the chunks covered every row.
    unsafe { dx.set_len(rows * n) };
    let (mut dg, mut db) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    for p in partial.chunks_exact(2 * n) {
        for c in 0..n {
            dg[c] += p[c];
            db[c] += p[n + c];
        }
    }
    (dx, dg, db)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_fma<T: Real>(
    x: &[T],
    g: &[T],
    dy: &[T],
    eps: f64,
    centred: bool,
    out: [&mut [T]; 3],
) {
    backward_lanes(x, g, dy, eps, centred, out)
}

/// Accumulates this block of rows' dg and db; writes its dx.
#[inline(always)]
fn backward_lanes<T: Real>(
    x: &[T],
    g: &[T],
    dy: &[T],
    eps: f64,
    centred: bool,
    [dx, dg, db]: [&mut [T]; 3],
) {
    let n = g.len();
    let inv_n = T::of(1.0 / n as f64);
    let mut xhat = vec![T::ZERO; n];
    for ((xr, dyr), dxr) in x
        .chunks_exact(n)
        .zip(dy.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let (mean, r) = row_stats(xr, T::of(eps), centred);
        let (mut sum_d, mut sum_dx) = (T::ZERO, T::ZERO);
        for c in 0..n {
            xhat[c] = (xr[c] - mean) * r;
            let d = dyr[c] * g[c];
            sum_d += d;
            sum_dx += d * xhat[c];
            dg[c] += dyr[c] * xhat[c];
            db[c] += dyr[c];
        }
        let mean_d = if centred { sum_d * inv_n } else { T::ZERO };
        let mean_dx = sum_dx * inv_n;
        for c in 0..n {
            dxr[c] = r * (dyr[c] * g[c] - mean_d - xhat[c] * mean_dx);
        }
    }
}

fn check_last_dim(l: &Layout, n: usize, op: &str) -> candle_core::Result<()> {
    if n == 0 || l.shape().dims().last() != Some(&n) {
        candle_core::bail!("{op}: {:?} does not end in {n}", l.shape())
    }
    Ok(())
}

/// The forward pass of either norm on candle's storage (`b` only for LayerNorm).
fn forward_storage(
    name: &str,
    x: (&CpuStorage, &Layout),
    g: (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
    eps: f64,
) -> candle_core::Result<CpuStorage> {
    fn run<T: Real>(
        name: &str,
        x: (&CpuStorage, &Layout),
        g: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
        eps: f64,
    ) -> candle_core::Result<CpuStorage> {
        let xs = T::slice(x.0, x.1, name)?;
        let gs = T::slice(g.0, g.1, name)?;
        let bs = b.map(|b| T::slice(b.0, b.1, name)).transpose()?;
        check_last_dim(x.1, gs.len(), name)?;
        // LayerNorm is the centred norm with a bias; RMSNorm neither.
        Ok(T::storage(forward(xs, gs, bs, eps, b.is_some())))
    }
    match x.0 {
        CpuStorage::F64(_) => run::<f64>(name, x, g, b, eps),
        _ => run::<f32>(name, x, g, b, eps),
    }
}

/// The backward pass of either norm: (dx, dg, db).
fn backward_tensors(
    x: &Tensor,
    g: &Tensor,
    dy: &Tensor,
    eps: f64,
    centred: bool,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    fn run<T: Real>(
        x: &Tensor,
        g: &Tensor,
        dy: &Tensor,
        eps: f64,
        centred: bool,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (xc, gc, dyc) = (x.contiguous()?, g.contiguous()?, dy.contiguous()?);
        let (xb, gb, dyb) = (borrow(&xc), borrow(&gc), borrow(&dyc));
        let (dx, dg, db) = backward(
            xb.slice::<T>()?,
            gb.slice::<T>()?,
            dyb.slice::<T>()?,
            eps,
            centred,
        );
        Ok((
            Tensor::from_vec(dx, x.shape(), x.device())?,
            Tensor::from_vec(dg, g.shape(), g.device())?,
            Tensor::from_vec(db, g.shape(), g.device())?,
        ))
    }
    match x.dtype() {
        candle_core::DType::F64 => run::<f64>(x, g, dy, eps, centred),
        _ => run::<f32>(x, g, dy, eps, centred),
    }
}

/// (x - mean) / sqrt(var + eps) · g + b over the last axis.
pub struct LayerNormOp {
    pub eps: f64,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "kiln-layer-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = forward_storage(self.name(), (xs, xl), (gs, gl), Some((bs, bl)), self.eps)?;
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dg, db) = backward_tensors(x, g, dy, self.eps, true)?;
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// x / sqrt(mean(x²) + eps) · g over the last axis.
pub struct RmsNormOp {
    pub eps: f64,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "kiln-rms-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = forward_storage(self.name(), (xs, xl), (gs, gl), None, self.eps)?;
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dg, _) = backward_tensors(x, g, dy, self.eps, false)?;
        Ok((Some(dx), Some(dg)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::super::testing::assert_same_value_and_grads;
    use super::super::{layer_norm, rms_norm};

    /// Many rows (several parallel chunks) against candle's composed norms, value and
    /// gradients, in f64.
    #[test]
    fn chunked_norms_match_candles_composed_ones() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 70, 16), &dev).unwrap()).unwrap();
        let g = Var::from_tensor(&Tensor::randn(1f64, 0.1, 16, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f64, 0.1, 16, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f64, 1.0, (3, 70, 16), &dev).unwrap();
        let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
        let ours = layer_norm(xt, gt, bt, 1e-5).unwrap();
        let theirs = candle_nn::ops::layer_norm_slow(xt, gt, bt, 1e-5).unwrap();
        assert_same_value_and_grads(&ours, &theirs, &r, &[&x, &g, &b]);
        let ours = rms_norm(xt, gt, 1e-5).unwrap();
        let theirs = candle_nn::ops::rms_norm_slow(xt, gt, 1e-5).unwrap();
        assert_same_value_and_grads(&ours, &theirs, &r, &[&x, &g]);
    }
}

//! Causal self-attention for training, softmax(q·kᵀ/√d + mask)·v, fused: q, k and v stay
//! in the token-major layout the projections produce, (batch, time, heads · head_dim), and
//! each head is a strided view of them, so no head transposes or copies are made and no
//! (t × t) score tensor outlives the call. Backward recomputes the probabilities (as
//! FlashAttention does) and applies
//!
//! dP = dy·vᵀ, dS = P ⊙ (dP - rowsum(dP ⊙ P)), dq = dS·k/√d, dk = dSᵀ·q/√d, dv = Pᵀ·dy.
//!
//! One task per (sequence, KV head) on candle's worker pool, each running its products on
//! one core; the query heads that share a KV head (grouped-query attention) run in the same
//! task, so its dk and dv blocks are private.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::real::{borrow, Real, SharedOut};
use super::strided::{matmul, View};

#[derive(Debug, Clone, Copy)]
pub struct CausalAttentionOp {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

/// Sizes of one call: batch, time, and row strides of q and of k/v.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    q_row: usize,
    kv_row: usize,
}

/// Row-wise causal softmax of the (t × t) scores in place; entries above the diagonal
/// become 0.
fn causal_softmax<T: Real>(s: &mut [T], t: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::dot::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { causal_softmax_fma(s, t) };
    }
    causal_softmax_lanes(s, t)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn causal_softmax_fma<T: Real>(s: &mut [T], t: usize) {
    causal_softmax_lanes(s, t)
}

#[inline(always)]
fn causal_softmax_lanes<T: Real>(s: &mut [T], t: usize) {
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        let (seen, masked) = row.split_at_mut(i + 1);
        let max = seen
            .iter()
            .fold(T::of(f64::NEG_INFINITY), |m, v| if *v > m { *v } else { m });
        let mut z = T::ZERO;
        for v in seen.iter_mut() {
            *v = (*v - max).exp();
            z += *v;
        }
        let inv = T::ONE / z;
        for v in seen.iter_mut() {
            *v *= inv;
        }
        masked.fill(T::ZERO);
    }
}

impl CausalAttentionOp {
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> candle_core::Result<Dims> {
        let (b, t, qw) = q.shape().dims3()?;
        let (kb, kt, kw) = k.shape().dims3()?;
        let d = self.head_dim;
        if self.n_kv == 0 || !self.n_head.is_multiple_of(self.n_kv) {
            candle_core::bail!(
                "attention: {} heads over {} KV heads",
                self.n_head,
                self.n_kv
            )
        }
        if qw != self.n_head * d
            || kw != self.n_kv * d
            || (kb, kt) != (b, t)
            || k.shape() != v.shape()
        {
            candle_core::bail!(
                "attention: q {:?}, k {:?}, v {:?} for {} heads, {} KV heads of {d}",
                q.shape(),
                k.shape(),
                v.shape(),
                self.n_head,
                self.n_kv
            )
        }
        Ok(Dims {
            b,
            t,
            q_row: qw,
            kv_row: kw,
        })
    }

    fn scale<T: Real>(&self) -> T {
        T::of(1.0 / (self.head_dim as f64).sqrt())
    }

    /// Head `h` of sequence `bi` in q (or y, dy), and its KV head in k (or v), as views.
    fn head_views(&self, n: Dims, bi: usize, h: usize) -> (View, View) {
        let d = self.head_dim;
        let kvh = h / (self.n_head / self.n_kv);
        (
            View::rows(bi * n.t * n.q_row + h * d, n.t, d, n.q_row),
            View::rows(bi * n.t * n.kv_row + kvh * d, n.t, d, n.kv_row),
        )
    }

    /// The probabilities P (t × t, row-major) of head `h` of sequence `bi`.
    fn probs<T: Real>(&self, q: &[T], k: &[T], n: Dims, bi: usize, h: usize, p: &mut [T]) {
        let (qv, kv) = self.head_views(n, bi, h);
        let sv = View::rows(0, n.t, n.t, n.t);
        // SAFETY: `p` is this task's t × t scratch.
        unsafe { matmul(p.as_mut_ptr(), sv, false, q, qv, k, kv.t(), self.scale()) };
        causal_softmax(p, n.t);
    }

    fn forward<T: Real>(&self, q: &[T], k: &[T], v: &[T], n: Dims) -> Vec<T> {
        let group = self.n_head / self.n_kv;
        let mut y = vec![T::ZERO; q.len()];
        let out = SharedOut(y.as_mut_ptr());
        let work = |tasks: std::ops::Range<usize>| {
            let mut p = vec![T::ZERO; n.t * n.t];
            for task in tasks {
                let (bi, kvh) = (task / self.n_kv, task % self.n_kv);
                for h in kvh * group..(kvh + 1) * group {
                    self.probs(q, k, n, bi, h, &mut p);
                    let (yv, vv) = self.head_views(n, bi, h);
                    let pv = View::rows(0, n.t, n.t, n.t);
                    // SAFETY: head h of sequence bi in y belongs to this task only.
                    unsafe { matmul(out.ptr(), yv, false, &p, pv, v, vv, T::ONE) };
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(n.b * self.n_kv, work);
        y
    }

    /// (dq, dk, dv).
    fn backward<T: Real>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        dy: &[T],
        n: Dims,
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let group = self.n_head / self.n_kv;
        let mut dq = vec![T::ZERO; q.len()];
        let mut dk = vec![T::ZERO; k.len()];
        let mut dv = vec![T::ZERO; v.len()];
        let outs = [
            SharedOut(dq.as_mut_ptr()),
            SharedOut(dk.as_mut_ptr()),
            SharedOut(dv.as_mut_ptr()),
        ];
        let work = |tasks: std::ops::Range<usize>| {
            let [dq_out, dk_out, dv_out] = outs;
            let mut p = vec![T::ZERO; n.t * n.t];
            let mut ds = vec![T::ZERO; n.t * n.t];
            let tt = View::rows(0, n.t, n.t, n.t);
            for task in tasks {
                let (bi, kvh) = (task / self.n_kv, task % self.n_kv);
                for (gi, h) in (kvh * group..(kvh + 1) * group).enumerate() {
                    self.probs(q, k, n, bi, h, &mut p);
                    let (qv, kv) = self.head_views(n, bi, h);
                    // SAFETY (all products below): `ds` is this task's scratch; head h of
                    // sequence bi in dq, and KV head kvh of sequence bi in dk and dv, are
                    // written by this task only.
                    unsafe { matmul(ds.as_mut_ptr(), tt, false, dy, qv, v, kv.t(), T::ONE) };
                    for (pr, dr) in p.chunks_exact(n.t).zip(ds.chunks_exact_mut(n.t)) {
                        let row = pr
                            .iter()
                            .zip(dr.iter())
                            .fold(T::ZERO, |s, (a, b)| s + *a * *b);
                        for (dv, pv) in dr.iter_mut().zip(pr) {
                            *dv = *pv * (*dv - row);
                        }
                    }
                    let scale = self.scale();
                    unsafe {
                        matmul(dq_out.ptr(), qv, false, &ds, tt, k, kv, scale);
                        matmul(dk_out.ptr(), kv, gi > 0, &ds, tt.t(), q, qv, scale);
                        matmul(dv_out.ptr(), kv, gi > 0, &p, tt.t(), dy, qv, T::ONE);
                    }
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(n.b * self.n_kv, work);
        (dq, dk, dv)
    }
}

impl CustomOp3 for CausalAttentionOp {
    fn name(&self) -> &'static str {
        "kiln-causal-attention-train"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = self.dims(ql, kl, vl)?;
        fn run<T: Real>(
            op: &CausalAttentionOp,
            s: [(&CpuStorage, &Layout); 3],
            n: Dims,
        ) -> candle_core::Result<CpuStorage> {
            let name = op.name();
            let q = T::slice(s[0].0, s[0].1, name)?;
            let k = T::slice(s[1].0, s[1].1, name)?;
            let v = T::slice(s[2].0, s[2].1, name)?;
            Ok(T::storage(op.forward(q, k, v, n)))
        }
        let s = [(qs, ql), (ks, kl), (vs, vl)];
        let out = match qs {
            CpuStorage::F64(_) => run::<f64>(self, s, n)?,
            _ => run::<f32>(self, s, n)?,
        };
        Ok((out, ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, _) = q.dims3()?;
        let n = Dims {
            b,
            t,
            q_row: self.n_head * self.head_dim,
            kv_row: self.n_kv * self.head_dim,
        };
        fn run<T: Real>(
            op: &CausalAttentionOp,
            [q, k, v, dy]: [&Tensor; 4],
            n: Dims,
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let c = [
                q.contiguous()?,
                k.contiguous()?,
                v.contiguous()?,
                dy.contiguous()?,
            ];
            let b = [borrow(&c[0]), borrow(&c[1]), borrow(&c[2]), borrow(&c[3])];
            let (dq, dk, dv) = op.backward(
                b[0].slice::<T>()?,
                b[1].slice::<T>()?,
                b[2].slice::<T>()?,
                b[3].slice::<T>()?,
                n,
            );
            Ok((
                Some(Tensor::from_vec(dq, q.shape(), q.device())?),
                Some(Tensor::from_vec(dk, k.shape(), k.device())?),
                Some(Tensor::from_vec(dv, v.shape(), v.device())?),
            ))
        }
        match q.dtype() {
            candle_core::DType::F64 => run::<f64>(self, [q, k, v, dy], n),
            _ => run::<f32>(self, [q, k, v, dy], n),
        }
    }
}

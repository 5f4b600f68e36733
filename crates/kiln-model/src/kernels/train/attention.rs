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
//!
//! q, k and v come either as three tensors or packed in one (b, t, (n_head + 2·n_kv) · d)
//! tensor, the output of a single q|k|v product; packed, backward returns one gradient for
//! that product, so the layer's input gets one backward product and no gradient sums.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

use super::real::{borrow, Real, SharedOut};
use super::strided::{matmul, View};

#[derive(Debug, Clone, Copy)]
pub struct CausalAttentionOp {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

/// Sizes of one call: batch, time, the row strides of q and of k/v, and where q, k and v
/// start within a row (all 0 for separate tensors; 0, n_head·d, (n_head + n_kv)·d packed).
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    q_row: usize,
    kv_row: usize,
    q_at: usize,
    k_at: usize,
    v_at: usize,
}

/// Views of one query head and its KV head: q (also dq), k (dk), v (dv), and y (dy), which
/// is always a separate (b, t, n_head · d) tensor.
#[derive(Clone, Copy)]
struct HeadViews {
    q: View,
    k: View,
    v: View,
    y: View,
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
        Ok(Dims::separate(b, t, qw, kw))
    }

    fn scale<T: Real>(&self) -> T {
        T::of(1.0 / (self.head_dim as f64).sqrt())
    }

    /// Head `h` of sequence `bi`, and its KV head, as views.
    fn head_views(&self, n: Dims, bi: usize, h: usize) -> HeadViews {
        let d = self.head_dim;
        let kvh = h / (self.n_head / self.n_kv);
        let kv_at = |at: usize| View::rows(bi * n.t * n.kv_row + at + kvh * d, n.t, d, n.kv_row);
        let y_row = self.n_head * d;
        HeadViews {
            q: View::rows(bi * n.t * n.q_row + n.q_at + h * d, n.t, d, n.q_row),
            k: kv_at(n.k_at),
            v: kv_at(n.v_at),
            y: View::rows(bi * n.t * y_row + h * d, n.t, d, y_row),
        }
    }

    /// The probabilities P (t × t, row-major) of one head.
    fn probs<T: Real>(&self, q: &[T], k: &[T], hv: HeadViews, t: usize, p: &mut [T]) {
        let sv = View::rows(0, t, t, t);
        // SAFETY: `p` is this task's t × t scratch.
        unsafe {
            matmul(
                p.as_mut_ptr(),
                sv,
                false,
                q,
                hv.q,
                k,
                hv.k.t(),
                self.scale(),
            )
        };
        causal_softmax(p, t);
    }

    /// y, (b, t, n_head · d). For packed inputs q, k and v are the same slice.
    fn forward<T: Real>(&self, q: &[T], k: &[T], v: &[T], n: Dims) -> Vec<T> {
        let group = self.n_head / self.n_kv;
        let len = n.b * n.t * self.n_head * self.head_dim;
        // Not zeroed: the products below write every element (gemm without reading dst).
        let mut y = Vec::with_capacity(len);
        let out = SharedOut(y.as_mut_ptr());
        let work = |tasks: std::ops::Range<usize>| {
            let mut p = vec![T::ZERO; n.t * n.t];
            for task in tasks {
                let (bi, kvh) = (task / self.n_kv, task % self.n_kv);
                for h in kvh * group..(kvh + 1) * group {
                    let hv = self.head_views(n, bi, h);
                    self.probs(q, k, hv, n.t, &mut p);
                    let pv = View::rows(0, n.t, n.t, n.t);
                    // SAFETY: head h of sequence bi in y belongs to this task only.
                    unsafe { matmul(out.ptr(), hv.y, false, &p, pv, v, hv.v, T::ONE) };
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(n.b * self.n_kv, work);
        // SAFETY: every head of every sequence was written.
        unsafe { y.set_len(len) };
        y
    }

    /// Writes dq, dk and dv through `outs`, laid out as q, k and v are (separate buffers
    /// of their sizes, or three pointers to one packed buffer). Every element of them is
    /// written before it is read, so the buffers need not be initialised.
    ///
    /// # Safety
    /// Each of `outs` points to a buffer as large as the matching input of a forward over
    /// `n`, which nothing else reads or writes during the call.
    unsafe fn backward<T: Real>(&self, [q, k, v, dy]: [&[T]; 4], outs: [SharedOut<T>; 3], n: Dims) {
        let group = self.n_head / self.n_kv;
        let work = |tasks: std::ops::Range<usize>| {
            let [dq_out, dk_out, dv_out] = outs;
            let mut p = vec![T::ZERO; n.t * n.t];
            let mut ds = vec![T::ZERO; n.t * n.t];
            let tt = View::rows(0, n.t, n.t, n.t);
            for task in tasks {
                let (bi, kvh) = (task / self.n_kv, task % self.n_kv);
                for (gi, h) in (kvh * group..(kvh + 1) * group).enumerate() {
                    let hv = self.head_views(n, bi, h);
                    self.probs(q, k, hv, n.t, &mut p);
                    // SAFETY (all products below): `ds` is this task's scratch; head h of
                    // sequence bi in dq, and KV head kvh of sequence bi in dk and dv, are
                    // written by this task only.
                    unsafe { matmul(ds.as_mut_ptr(), tt, false, dy, hv.y, v, hv.v.t(), T::ONE) };
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
                        matmul(dq_out.ptr(), hv.q, false, &ds, tt, k, hv.k, scale);
                        matmul(dk_out.ptr(), hv.k, gi > 0, &ds, tt.t(), q, hv.q, scale);
                        matmul(dv_out.ptr(), hv.v, gi > 0, &p, tt.t(), dy, hv.y, T::ONE);
                    }
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(n.b * self.n_kv, work);
    }

    /// The sizes of a packed (b, t, (n_head + 2·n_kv) · d) input.
    fn packed_dims(&self, shape: &Shape) -> candle_core::Result<Dims> {
        let (b, t, w) = shape.dims3()?;
        let d = self.head_dim;
        let (q_w, kv_w) = (self.n_head * d, self.n_kv * d);
        if self.n_kv == 0 || !self.n_head.is_multiple_of(self.n_kv) || w != q_w + 2 * kv_w {
            candle_core::bail!(
                "attention: packed q|k|v {shape:?} for {} heads, {} KV heads of {d}",
                self.n_head,
                self.n_kv
            )
        }
        Ok(Dims {
            b,
            t,
            q_row: w,
            kv_row: w,
            q_at: 0,
            k_at: q_w,
            v_at: q_w + kv_w,
        })
    }
}

impl Dims {
    fn separate(b: usize, t: usize, q_row: usize, kv_row: usize) -> Self {
        Self {
            b,
            t,
            q_row,
            kv_row,
            q_at: 0,
            k_at: 0,
            v_at: 0,
        }
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
        let n = Dims::separate(b, t, self.n_head * self.head_dim, self.n_kv * self.head_dim);
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
            let ins = [
                b[0].slice::<T>()?,
                b[1].slice::<T>()?,
                b[2].slice::<T>()?,
                b[3].slice::<T>()?,
            ];
            let (mut dq, mut dk, mut dv) = (
                Vec::with_capacity(ins[0].len()),
                Vec::with_capacity(ins[1].len()),
                Vec::with_capacity(ins[2].len()),
            );
            let outs = [
                SharedOut(dq.as_mut_ptr()),
                SharedOut(dk.as_mut_ptr()),
                SharedOut(dv.as_mut_ptr()),
            ];
            // SAFETY: dq, dk and dv are fresh buffers of q's, k's and v's sizes, and backward
            // writes all of them.
            unsafe {
                op.backward(ins, outs, n);
                dq.set_len(ins[0].len());
                dk.set_len(ins[1].len());
                dv.set_len(ins[2].len());
            }
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

/// [`CausalAttentionOp`] over one packed (b, t, (n_head + 2·n_kv) · d) q|k|v tensor.
#[derive(Debug, Clone, Copy)]
pub struct PackedCausalAttentionOp(pub CausalAttentionOp);

impl CustomOp1 for PackedCausalAttentionOp {
    fn name(&self) -> &'static str {
        "kiln-packed-causal-attention-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.0;
        let n = op.packed_dims(l.shape())?;
        fn run<T: Real>(
            op: &CausalAttentionOp,
            s: &CpuStorage,
            l: &Layout,
            n: Dims,
        ) -> candle_core::Result<CpuStorage> {
            let qkv = T::slice(s, l, op.name())?;
            Ok(T::storage(op.forward(qkv, qkv, qkv, n)))
        }
        let out = match s {
            CpuStorage::F64(_) => run::<f64>(&op, s, l, n)?,
            _ => run::<f32>(&op, s, l, n)?,
        };
        Ok((out, Shape::from((n.b, n.t, op.n_head * op.head_dim))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let op = self.0;
        let n = op.packed_dims(qkv.shape())?;
        fn run<T: Real>(
            op: &CausalAttentionOp,
            [qkv, dy]: [&Tensor; 2],
            n: Dims,
        ) -> candle_core::Result<Option<Tensor>> {
            let (c, dyc) = (qkv.contiguous()?, dy.contiguous()?);
            let (b, db) = (borrow(&c), borrow(&dyc));
            let (s, dys) = (b.slice::<T>()?, db.slice::<T>()?);
            let mut d = Vec::with_capacity(s.len());
            let out = SharedOut(d.as_mut_ptr());
            // SAFETY: d is a fresh buffer of the packed input's size; dq, dk and dv are
            // disjoint columns of it that together cover it, all written by backward.
            unsafe {
                op.backward([s, s, s, dys], [out, out, out], n);
                d.set_len(s.len());
            }
            Ok(Some(Tensor::from_vec(d, qkv.shape(), qkv.device())?))
        }
        match qkv.dtype() {
            candle_core::DType::F64 => run::<f64>(&op, [qkv, dy], n),
            _ => run::<f32>(&op, [qkv, dy], n),
        }
    }
}

//! Causal attention over an f16 key/value cache, rounded the way llama.cpp's CPU path rounds
//! (its default, without flash attention): keys and values are stored as f16, each query is
//! rounded to f16 before q·k, the scores are scaled, softmaxed in f32 (sum in f64), and the
//! probabilities are rounded to f16 before they weight the values. Products of two f16
//! values are exact in f32, so only the summation order differs from ggml's.
//!
//! Matching those roundings matters: SmolLM2-135M's logits move by about 1 between llama.cpp
//! with an f16 and an f32 cache, enough to change greedy choices within 64 tokens.

use half::f16;

use super::ggml_math::expf_ggml;

/// Head counts and size of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnDims {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

/// A contiguous cache's keys and values: `batch` rows of `cap` positions of
/// `n_kv * head_dim` values, of which positions `0..len` are filled.
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a> {
    pub k: &'a [f16],
    pub v: &'a [f16],
    pub cap: usize,
    pub len: usize,
}

/// A paged cache's keys and values: blocks of `block_size` positions of `n_kv * head_dim`
/// values each, block `i` at positions `i * block_size ..` of `k` and `v`.
#[derive(Debug, Clone, Copy)]
pub struct KvBlocks<'a> {
    pub k: &'a [f16],
    pub v: &'a [f16],
    pub block_size: usize,
}

/// One sequence's part of an attention call: `t` queries, rows `q_row..q_row + t` of the
/// query matrix, at positions `len - t .. len`; its keys and values for positions `0..len`
/// live in `blocks` (position j in `blocks[j / block_size]`).
#[derive(Debug, Clone, Copy)]
pub struct SeqQueries<'a> {
    pub q_row: usize,
    pub t: usize,
    pub len: usize,
    pub blocks: &'a [u32],
}

/// How llama.cpp's CPU backend sums the two attention products, which decides the last
/// bit of every score: with two or more new tokens it runs tinyBLAS (one 8-lane
/// accumulator per output), with one it runs `ggml_vec_dot_f16` (four 8-lane accumulators
/// over consecutive 8-value chunks). The sums are written out here lane by lane in those
/// orders so kiln's f16 attention reproduces llama.cpp's bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SumOrder {
    Tiled,
    VecDot,
}

/// `q` holds (b, t, n_head, head_dim) queries at positions `len - t .. len` (RoPE applied);
/// returns (b, t, n_head * head_dim). Query heads share a KV head in consecutive groups.
pub fn causal_attention(q: &[f32], b: usize, t: usize, kv: KvView<'_>, dims: AttnDims) -> Vec<f32> {
    assert!(t <= kv.len && kv.len <= kv.cap, "cache holds the queries");
    // A contiguous cache is a paged one whose block i is batch row i, `cap` positions long.
    let ids: Vec<u32> = (0..b as u32).collect();
    let seqs: Vec<SeqQueries> = (0..b)
        .map(|bi| SeqQueries {
            q_row: bi * t,
            t,
            len: kv.len,
            blocks: &ids[bi..bi + 1],
        })
        .collect();
    let blocks = KvBlocks {
        k: kv.k,
        v: kv.v,
        block_size: kv.cap,
    };
    paged_attention(q, &seqs, blocks, dims)
}

/// Causal attention for several sequences at once, each reading its own blocks of a paged
/// cache (no gather). `q` holds (rows, n_head, head_dim) queries, RoPE applied; returns the
/// same shape. Each sequence's sums follow llama.cpp's orders for its own query count, so a
/// sequence gives the same bits batched as alone.
pub fn paged_attention(
    q: &[f32],
    seqs: &[SeqQueries<'_>],
    kv: KvBlocks<'_>,
    dims: AttnDims,
) -> Vec<f32> {
    let AttnDims {
        n_head,
        n_kv,
        head_dim: d,
    } = dims;
    assert!(q.len().is_multiple_of(n_head * d), "query shape");
    let row = n_kv * d;
    let bs = kv.block_size;
    for s in seqs {
        assert!(
            s.t <= s.len && s.len <= s.blocks.len() * bs,
            "blocks hold the queries"
        );
        assert!((s.q_row + s.t) * n_head * d <= q.len(), "query rows");
    }
    // Task ranges: sequence i owns tasks starts[i]..starts[i + 1], (head, query) major.
    let mut starts = vec![0usize];
    for s in seqs {
        starts.push(starts[starts.len() - 1] + s.t * n_head);
    }
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    let out_ptr = out.as_mut_ptr() as usize;
    let work = |range: std::ops::Range<usize>| {
        let mut scores = Vec::new();
        let mut lanes = Vec::new();
        let mut value_rows = Vec::new();
        let mut qr = vec![0f32; d];
        for task in range {
            let si = starts.partition_point(|&x| x <= task) - 1;
            let s = &seqs[si];
            let order = if s.t >= 2 && d.is_multiple_of(8) {
                SumOrder::Tiled
            } else {
                SumOrder::VecDot
            };
            // Consecutive tasks are consecutive queries of one head: their keys stay in cache.
            let (h, i) = ((task - starts[si]) / s.t, (task - starts[si]) % s.t);
            let g = h / (n_head / n_kv);
            let visible = s.len - s.t + i + 1;
            // Offset of block b's first position, at this head's group.
            let block_at = |b: usize| s.blocks[b] as usize * bs * row + g * d;
            let at = ((s.q_row + i) * n_head + h) * d;
            for (o, x) in qr.iter_mut().zip(&q[at..at + d]) {
                *o = f16::from_f32(*x).to_f32();
            }
            scores.clear();
            scores.resize(visible, 0.0);
            for (b, chunk) in scores.chunks_mut(bs).enumerate() {
                key_scores(order, &qr, &kv.k[block_at(b)..], row, scale, chunk);
            }
            softmax_to_f16(&mut scores);
            // SAFETY: each (query row, head) is written by exactly one task.
            let dst = unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(at), d) };
            value_rows.clear();
            for b in 0..visible.div_ceil(bs) {
                let first = block_at(b);
                let n = (visible - b * bs).min(bs);
                value_rows.extend((0..n).map(|i| first + i * row));
            }
            weighted_values(order, &scores, kv.v, &value_rows, &mut lanes, dst);
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(starts[seqs.len()], work);
    out
}

/// tinyBLAS's horizontal sum of 8 lanes: halves added, then (0 + 2) + (1 + 3).
#[inline(always)]
fn hsum_tiled(a: &[f32; 8]) -> f32 {
    let t: [f32; 4] = std::array::from_fn(|i| a[i + 4] + a[i]);
    (t[0] + t[2]) + (t[1] + t[3])
}

/// `GGML_F32x8_REDUCE` over four 8-lane accumulators: (0 + 2) + (1 + 3) lane-wise, halves
/// added, then (0 + 1) + (2 + 3).
#[inline(always)]
fn reduce_vec_dot(acc: &[[f32; 8]; 4]) -> f32 {
    let x: [f32; 8] = std::array::from_fn(|l| (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]));
    let t: [f32; 4] = std::array::from_fn(|i| x[i] + x[i + 4]);
    (t[0] + t[1]) + (t[2] + t[3])
}

/// q · k for an f16-rounded query and an f16 key row, summed in `order`: the reference
/// the AVX2 kernels reproduce.
#[inline(always)]
fn dot_f16_lanes(order: SumOrder, q: &[f32], k: &[f16]) -> f32 {
    let d = q.len();
    match order {
        SumOrder::Tiled => {
            let mut acc = [0f32; 8];
            for c in (0..d).step_by(8) {
                for l in 0..8 {
                    acc[l] = k[c + l].to_f32().mul_add(q[c + l], acc[l]);
                }
            }
            hsum_tiled(&acc)
        }
        SumOrder::VecDot => {
            let np = d - d % 32;
            let mut acc = [[0f32; 8]; 4];
            for c in (0..np).step_by(8) {
                let a = &mut acc[(c / 8) % 4];
                for l in 0..8 {
                    a[l] = k[c + l].to_f32().mul_add(q[c + l], a[l]);
                }
            }
            let mut sum = reduce_vec_dot(&acc) as f64;
            for c in np..d {
                sum += (k[c].to_f32() * q[c]) as f64;
            }
            sum as f32
        }
    }
}

/// `out[j] = (q · k_j) · scale` for the keys `k_j = k[j * stride ..][..d]`, each dot summed
/// in `order`.
fn key_scores(order: SumOrder, q: &[f32], k: &[f16], stride: usize, scale: f32, out: &mut [f32]) {
    let d = q.len();
    assert!(
        out.is_empty() || k.len() >= (out.len() - 1) * stride + d,
        "key rows"
    );
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(8) && super::dot::has_avx2() {
        // SAFETY: features checked; every key row j < out.len() has d values at j * stride.
        return unsafe { avx2::key_scores(order, q, k, stride, scale, out) };
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_f16_lanes(order, q, &k[j * stride..j * stride + d]) * scale;
    }
}

/// Softmax of scaled scores as `ggml_vec_soft_max_f32`: exponentials summed 8 at a time
/// (from position 0) in float, those sums in f64; then probabilities rounded to f16.
fn softmax_to_f16(s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::dot::has_avx2() {
        // SAFETY: features checked; the body is plain scalar code, compiled with FMA so
        // `mul_add` is one instruction instead of a libm call.
        return unsafe { avx2::softmax_to_f16(s) };
    }
    softmax_to_f16_lanes(s)
}

#[inline(always)]
fn softmax_to_f16_lanes(s: &mut [f32]) {
    let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0f64;
    for chunk in s.chunks_mut(8) {
        let mut lanes = [0f32; 8];
        for (l, x) in chunk.iter_mut().enumerate() {
            *x = expf_ggml(*x - max);
            lanes[l] = *x;
        }
        sum += hsum_tiled(&lanes) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for x in s.iter_mut() {
        *x = f16::from_f32(*x * inv).to_f32();
    }
}

/// `out[c] = Σ_j p[j] · v[j][c]` with each channel's sum split over lanes (and, for
/// `VecDot`, accumulators) by position exactly as ggml splits the `V·P` dot product.
/// Position j's value row is `v[rows[j]..][..d]` (rows scattered over a paged cache's blocks).
fn weighted_values(
    order: SumOrder,
    p: &[f32],
    v: &[f16],
    rows: &[usize],
    lanes: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = out.len();
    let groups = match order {
        SumOrder::Tiled => 8,
        SumOrder::VecDot => 32,
    };
    assert_eq!(p.len(), rows.len(), "one value row per probability");
    assert!(rows.iter().all(|&r| r + d <= v.len()), "value rows");
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(8) && super::dot::has_avx2() {
        // Every lane is written (no zero fill needed).
        lanes.resize(groups * d, 0.0);
        // SAFETY: features checked; every row holds d values (asserted above).
        unsafe { avx2::accumulate_values(p, v, rows, groups, lanes) };
        // SAFETY: as above; lanes holds groups * d values, out d.
        return unsafe { avx2::reduce_lanes(order, lanes, out) };
    }
    lanes.clear();
    lanes.resize(groups * d, 0.0);
    accumulate_values(p, v, rows, groups, lanes);
    reduce_lanes(order, lanes, out);
}

/// Each channel's lanes (group g of channel c at `lanes[g * d + c]`) summed as ggml sums
/// the lanes of one dot product.
fn reduce_lanes(order: SumOrder, lanes: &[f32], out: &mut [f32]) {
    let d = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        let lane = |g: usize| lanes[g * d + c];
        *o = match order {
            SumOrder::Tiled => hsum_tiled(&std::array::from_fn(lane)),
            SumOrder::VecDot => reduce_vec_dot(&std::array::from_fn(|a| {
                std::array::from_fn(|l| lane(a * 8 + l))
            })),
        };
    }
}

/// Position j adds into lane group `j % groups` (8 lanes, or 4 accumulators × 8 lanes),
/// positions in increasing order within a group.
fn accumulate_values(p: &[f32], v: &[f16], rows: &[usize], groups: usize, lanes: &mut [f32]) {
    let d = lanes.len() / groups;
    for (j, (&pj, &r)) in p.iter().zip(rows).enumerate() {
        let acc = &mut lanes[(j % groups) * d..][..d];
        for (a, x) in acc.iter_mut().zip(&v[r..r + d]) {
            *a = x.to_f32().mul_add(pj, *a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{hsum_tiled, reduce_vec_dot, SumOrder};
    use crate::kernels::ggml_math::{avx2::expf8, expf_ggml};

    /// [`super::softmax_to_f16_lanes`] with eight exponentials per instruction sequence
    /// ([`expf8`], bit-identical per lane) and the same chunk sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn softmax_to_f16(s: &mut [f32]) {
        let n = s.len();
        let full = n - n % 8;
        let p = s.as_mut_ptr();
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in (0..full).step_by(8) {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(c)));
        }
        let lanes: [f32; 8] = std::mem::transmute(vmax);
        let max = s[full..]
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let vm = _mm256_set1_ps(max);
        let mut sum = 0f64;
        for c in (0..full).step_by(8) {
            let e = expf8(_mm256_sub_ps(_mm256_loadu_ps(p.add(c)), vm));
            _mm256_storeu_ps(p.add(c), e);
            sum += hsum_tiled(&std::mem::transmute::<__m256, [f32; 8]>(e)) as f64;
        }
        if full < n {
            let mut lanes = [0f32; 8];
            for (l, x) in s[full..].iter_mut().enumerate() {
                *x = expf_ggml(*x - max);
                lanes[l] = *x;
            }
            sum += hsum_tiled(&lanes) as f64;
        }
        let inv = (1.0 / sum) as f32;
        let vinv = _mm256_set1_ps(inv);
        for c in (0..full).step_by(8) {
            let x = _mm256_mul_ps(_mm256_loadu_ps(p.add(c)), vinv);
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
            _mm256_storeu_ps(p.add(c), _mm256_cvtph_ps(h));
        }
        for x in s[full..].iter_mut() {
            *x = f16::from_f32(*x * inv).to_f32();
        }
    }

    /// `acc + k[c8] · q[c8]` for the eighth chunk `c8` of an f16 key row and an f32 query.
    #[inline(always)]
    unsafe fn fma8(k: *const __m128i, q: *const f32, c8: usize, acc: __m256) -> __m256 {
        let kf = _mm256_cvtph_ps(_mm_loadu_si128(k.add(c8)));
        _mm256_fmadd_ps(kf, _mm256_loadu_ps(q.add(8 * c8)), acc)
    }

    /// [`super::key_scores`] eight keys at a time: each key's lanes are summed as
    /// [`dot_f16`] sums them, and the last horizontal steps run across the eight keys at
    /// once (a 4 × 4 transpose per 128-bit half), so every score has the same bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn key_scores(
        order: SumOrder,
        q: &[f32],
        k: &[f16],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        match q.len() {
            64 => key_scores_d::<64>(order, q, k, stride, scale, out),
            128 => key_scores_d::<128>(order, q, k, stride, scale, out),
            _ => key_scores_d::<0>(order, q, k, stride, scale, out),
        }
    }

    /// [`key_scores`] for head size `D` known at compile time (its loops unroll), or any
    /// head size with `D = 0`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn key_scores_d<const D: usize>(
        order: SumOrder,
        q: &[f32],
        k: &[f16],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let d = if D > 0 { D } else { q.len() };
        let n = out.len();
        let mut j = 0;
        if order == SumOrder::Tiled || d.is_multiple_of(32) {
            let (qp, kp) = (q.as_ptr(), k.as_ptr());
            let vscale = _mm256_set1_ps(scale);
            while j + 8 <= n {
                // Per key, the four sums of lane i and lane i + 4 (added either way round:
                // IEEE addition commutes).
                let mut t = [_mm_setzero_ps(); 8];
                for (kk, tk) in t.iter_mut().enumerate() {
                    let row = kp.add((j + kk) * stride) as *const __m128i;
                    let x = match order {
                        SumOrder::Tiled => {
                            let mut acc = _mm256_setzero_ps();
                            for c8 in 0..d / 8 {
                                acc = fma8(row, qp, c8, acc);
                            }
                            acc
                        }
                        SumOrder::VecDot => {
                            // Chunk c8 adds into accumulator c8 % 4, unrolled so the four
                            // stay in registers.
                            let [mut a0, mut a1, mut a2, mut a3] = [_mm256_setzero_ps(); 4];
                            for c32 in 0..d / 32 {
                                a0 = fma8(row, qp, 4 * c32, a0);
                                a1 = fma8(row, qp, 4 * c32 + 1, a1);
                                a2 = fma8(row, qp, 4 * c32 + 2, a2);
                                a3 = fma8(row, qp, 4 * c32 + 3, a3);
                            }
                            _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3))
                        }
                    };
                    *tk = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
                }
                // Keys 0-3 in the low half, 4-7 in the high half; z_i = partial i per key.
                let y: [__m256; 4] = std::array::from_fn(|r| _mm256_set_m128(t[r + 4], t[r]));
                let (a, b) = (
                    _mm256_unpacklo_ps(y[0], y[1]),
                    _mm256_unpackhi_ps(y[0], y[1]),
                );
                let (c, e) = (
                    _mm256_unpacklo_ps(y[2], y[3]),
                    _mm256_unpackhi_ps(y[2], y[3]),
                );
                let z0 = _mm256_shuffle_ps::<0x44>(a, c);
                let z1 = _mm256_shuffle_ps::<0xee>(a, c);
                let z2 = _mm256_shuffle_ps::<0x44>(b, e);
                let z3 = _mm256_shuffle_ps::<0xee>(b, e);
                let sum = match order {
                    // hsum_tiled: (t0 + t2) + (t1 + t3)
                    SumOrder::Tiled => _mm256_add_ps(_mm256_add_ps(z0, z2), _mm256_add_ps(z1, z3)),
                    // reduce_vec_dot: (t0 + t1) + (t2 + t3)
                    SumOrder::VecDot => _mm256_add_ps(_mm256_add_ps(z0, z1), _mm256_add_ps(z2, z3)),
                };
                _mm256_storeu_ps(out.as_mut_ptr().add(j), _mm256_mul_ps(sum, vscale));
                j += 8;
            }
        }
        for (jj, o) in out.iter_mut().enumerate().skip(j) {
            *o = dot_f16(order, q, &k[jj * stride..jj * stride + d]) * scale;
        }
    }

    /// [`super::dot_f16_lanes`] with one instruction per 8 lanes; the same sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_f16(order: SumOrder, q: &[f32], k: &[f16]) -> f32 {
        let d = q.len();
        let (qp, kp) = (q.as_ptr(), k.as_ptr() as *const __m128i);
        let lanes = |x: __m256| -> [f32; 8] { std::mem::transmute(x) };
        match order {
            SumOrder::Tiled => {
                let mut acc = _mm256_setzero_ps();
                for c8 in 0..d / 8 {
                    acc = fma8(kp, qp, c8, acc);
                }
                hsum_tiled(&lanes(acc))
            }
            SumOrder::VecDot => {
                let np = d - d % 32;
                let [mut a0, mut a1, mut a2, mut a3] = [_mm256_setzero_ps(); 4];
                for c32 in 0..d / 32 {
                    a0 = fma8(kp, qp, 4 * c32, a0);
                    a1 = fma8(kp, qp, 4 * c32 + 1, a1);
                    a2 = fma8(kp, qp, 4 * c32 + 2, a2);
                    a3 = fma8(kp, qp, 4 * c32 + 3, a3);
                }
                let mut sum = reduce_vec_dot(&[a0, a1, a2, a3].map(lanes)) as f64;
                for c in np..d {
                    sum += (k[c].to_f32() * q[c]) as f64;
                }
                sum as f32
            }
        }
    }

    /// [`super::reduce_lanes`] for eight channels per instruction: the same additions, each
    /// running across channels instead of within one.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn reduce_lanes(order: SumOrder, lanes: &[f32], out: &mut [f32]) {
        let d = out.len();
        let lp = lanes.as_ptr();
        for c in (0..d).step_by(8) {
            let lane = |g: usize| _mm256_loadu_ps(lp.add(g * d + c));
            let add = |a: __m256, b: __m256| _mm256_add_ps(a, b);
            let sum = match order {
                SumOrder::Tiled => {
                    let t: [__m256; 4] = std::array::from_fn(|i| add(lane(i + 4), lane(i)));
                    add(add(t[0], t[2]), add(t[1], t[3]))
                }
                SumOrder::VecDot => {
                    let x: [__m256; 8] = std::array::from_fn(|l| {
                        add(add(lane(l), lane(16 + l)), add(lane(8 + l), lane(24 + l)))
                    });
                    let t: [__m256; 4] = std::array::from_fn(|i| add(x[i], x[i + 4]));
                    add(add(t[0], t[1]), add(t[2], t[3]))
                }
            };
            _mm256_storeu_ps(out.as_mut_ptr().add(c), sum);
        }
    }

    /// [`super::accumulate_values`] group by group: a group's lanes for up to 64 channels
    /// stay in registers while its positions (j ≡ g mod groups, increasing) add in, so
    /// every lane gets the same additions in the same order.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn accumulate_values(
        p: &[f32],
        v: &[f16],
        rows: &[usize],
        groups: usize,
        lanes: &mut [f32],
    ) {
        let d = lanes.len() / groups;
        for c0 in (0..d).step_by(64) {
            let width = (d - c0).min(64) / 8;
            match width {
                8 => accumulate_tile::<8>(p, v, rows, groups, d, c0, lanes),
                _ => accumulate_tile::<0>(p, v, rows, groups, d, c0, lanes),
            }
        }
    }

    /// Channels `c0..c0 + 8 * W` (W = 8, or any width up to 8 with W = 0).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn accumulate_tile<const W: usize>(
        p: &[f32],
        v: &[f16],
        rows: &[usize],
        groups: usize,
        d: usize,
        c0: usize,
        lanes: &mut [f32],
    ) {
        let w = if W > 0 { W } else { ((d - c0) / 8).min(8) };
        let vp = v.as_ptr().add(c0);
        for g in 0..groups {
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut j = g;
            while j < p.len() {
                let pj = *p.get_unchecked(j);
                // A zero probability adds exactly zero.
                if pj != 0.0 {
                    let pv = _mm256_set1_ps(pj);
                    let row = vp.add(*rows.get_unchecked(j)) as *const __m128i;
                    for (c8, a) in acc.iter_mut().enumerate().take(w) {
                        let x = _mm256_cvtph_ps(_mm_loadu_si128(row.add(c8)));
                        *a = _mm256_fmadd_ps(x, pv, *a);
                    }
                }
                j += groups;
            }
            let dst = lanes.as_mut_ptr().add(g * d + c0);
            for (c8, a) in acc.iter().enumerate().take(w) {
                _mm256_storeu_ps(dst.add(8 * c8), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written as loops, with llama.cpp's roundings applied explicitly and every
    /// sum in f64.
    fn naive(
        q: &[f32],
        k: &[f16],
        v: &[f16],
        b: usize,
        t: usize,
        total: usize,
        dims: AttnDims,
    ) -> Vec<f32> {
        let AttnDims {
            n_head,
            n_kv,
            head_dim: d,
        } = dims;
        let r = |x: f32| f16::from_f32(x).to_f32();
        let mut out = vec![0f32; b * t * n_head * d];
        for bi in 0..b {
            for i in 0..t {
                for h in 0..n_head {
                    let g = h / (n_head / n_kv);
                    let qi = &q[((bi * t + i) * n_head + h) * d..][..d];
                    let at = |j: usize| ((bi * total + j) * n_kv + g) * d;
                    let visible = total - t + i + 1;
                    let s: Vec<f64> = (0..visible)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|c| r(qi[c]) as f64 * k[at(j) + c].to_f64())
                                .sum();
                            dot / (d as f64).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for c in 0..d {
                        let y: f64 = (0..visible)
                            .map(|j| {
                                r(((s[j] - m).exp() / z) as f32) as f64 * v[at(j) + c].to_f64()
                            })
                            .sum();
                        out[((bi * t + i) * n_head + h) * d + c] = y as f32;
                    }
                }
            }
        }
        out
    }

    fn check(b: usize, t: usize, total: usize, dims: AttnDims) {
        let mut s = 12345u32;
        let mut rnd = || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        };
        let row = dims.n_kv * dims.head_dim;
        let q: Vec<f32> = (0..b * t * dims.n_head * dims.head_dim)
            .map(|_| rnd())
            .collect();
        let k: Vec<f16> = (0..b * total * row).map(|_| f16::from_f32(rnd())).collect();
        let v: Vec<f16> = (0..b * total * row).map(|_| f16::from_f32(rnd())).collect();
        let kv = KvView {
            k: &k,
            v: &v,
            cap: total,
            len: total,
        };
        let got = causal_attention(&q, b, t, kv, dims);
        let want = naive(&q, &k, &v, b, t, total, dims);
        for (i, (a, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - w).abs() < 1e-4,
                "{dims:?} b={b} t={t} total={total} [{i}]: {a} vs {w}"
            );
        }
    }

    #[test]
    fn matches_naive_multi_head_and_grouped_query() {
        let mha = AttnDims {
            n_head: 4,
            n_kv: 4,
            head_dim: 16,
        };
        let gqa = AttnDims {
            n_head: 9,
            n_kv: 3,
            head_dim: 64,
        };
        let odd = AttnDims {
            n_head: 2,
            n_kv: 1,
            head_dim: 6,
        };
        for dims in [mha, gqa, odd] {
            check(1, 7, 7, dims); // prefill, queries not a multiple of the block
            check(1, 1, 13, dims); // decode
            check(2, 3, 10, dims); // batched continuation
        }
    }

    /// Sequences of different lengths reading scattered blocks of one paged cache, in one
    /// call, give exactly the bits each gives alone from a contiguous cache.
    #[test]
    fn paged_batch_equals_each_sequence_alone_bit_for_bit() {
        let dims = AttnDims {
            n_head: 6,
            n_kv: 2,
            head_dim: 16,
        };
        let (row, bs) = (dims.n_kv * dims.head_dim, 4);
        let val = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
        // (positions cached in all, new queries): a prefill chunk, decodes, a continuation.
        let shapes = [(9usize, 9usize), (13, 1), (1, 1), (11, 3)];
        let num_blocks = 16;
        let mut k = vec![f16::ZERO; num_blocks * bs * row];
        let mut v = k.clone();
        // Hand out blocks in a scrambled order so tables are not contiguous.
        let mut free: Vec<u32> = (0..num_blocks as u32).map(|i| (i * 7) % 16).collect();
        let mut tables = vec![];
        let mut q = vec![];
        let mut alone = vec![];
        for (si, &(len, t)) in shapes.iter().enumerate() {
            let table: Vec<u32> = free.drain(..len.div_ceil(bs)).collect();
            let kc: Vec<f16> = (0..len * row)
                .map(|i| f16::from_f32(val(i + 31 * si)))
                .collect();
            let vc: Vec<f16> = (0..len * row)
                .map(|i| f16::from_f32(val(i + 57 * si)))
                .collect();
            for j in 0..len {
                let at = (table[j / bs] as usize * bs + j % bs) * row;
                k[at..at + row].copy_from_slice(&kc[j * row..(j + 1) * row]);
                v[at..at + row].copy_from_slice(&vc[j * row..(j + 1) * row]);
            }
            let qs: Vec<f32> = (0..t * dims.n_head * dims.head_dim)
                .map(|i| val(i + 11 * si))
                .collect();
            let kv = KvView {
                k: &kc,
                v: &vc,
                cap: len,
                len,
            };
            alone.extend(causal_attention(&qs, 1, t, kv, dims));
            q.extend(qs);
            tables.push(table);
        }
        let mut q_row = 0;
        let seqs: Vec<SeqQueries> = shapes
            .iter()
            .zip(&tables)
            .map(|(&(len, t), table)| {
                q_row += t;
                SeqQueries {
                    q_row: q_row - t,
                    t,
                    len,
                    blocks: table,
                }
            })
            .collect();
        let blocks = KvBlocks {
            k: &k,
            v: &v,
            block_size: bs,
        };
        let got = paged_attention(&q, &seqs, blocks, dims);
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&alone));
    }

    /// The AVX2 kernels must reproduce the lane-by-lane reference exactly, not
    /// approximately: parity with llama.cpp depends on the last bit.
    #[test]
    fn simd_and_portable_sums_agree_bit_for_bit() {
        let d = 64;
        let n = 37;
        let val = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
        let q: Vec<f32> = (0..d).map(|i| f16::from_f32(val(i)).to_f32()).collect();
        let kv: Vec<f16> = (0..n * d).map(|i| f16::from_f32(val(i + 99))).collect();
        let p: Vec<f32> = (0..n)
            .map(|j| f16::from_f32(val(j + 7).abs() / 10.0).to_f32())
            .collect();
        for order in [SumOrder::Tiled, SumOrder::VecDot] {
            // 37 keys: four groups of eight and a remainder, rows 64 apart.
            let mut fast = vec![0f32; n];
            key_scores(order, &q, &kv, d, 0.125, &mut fast);
            for (j, f) in fast.iter().enumerate() {
                let k = &kv[j * d..(j + 1) * d];
                let want = dot_f16_lanes(order, &q, k) * 0.125;
                assert_eq!(f.to_bits(), want.to_bits(), "{order:?} key {j}");
            }
            // Softmax over lengths with and without a partial chunk, scores spread wide
            // enough that some exponentials underflow.
            for len in [n, 32, 5] {
                let mut sc: Vec<f32> = (0..len).map(|j| val(j * 3) * 100.0).collect();
                let mut want = sc.clone();
                softmax_to_f16(&mut sc);
                softmax_to_f16_lanes(&mut want);
                let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&sc), bits(&want), "softmax of {len}");
            }
            let groups = if order == SumOrder::Tiled { 8 } else { 32 };
            // Value rows out of order, as a paged cache's blocks scatter them.
            let rows: Vec<usize> = (0..n).map(|j| ((j * 11) % n) * d).collect();
            let mut fast = Vec::new();
            let mut out = vec![0f32; d];
            weighted_values(order, &p, &kv, &rows, &mut fast, &mut out);
            let mut slow = vec![0f32; groups * d];
            accumulate_values(&p, &kv, &rows, groups, &mut slow);
            assert_eq!(fast, slow, "{order:?} value lanes");
            let mut want = vec![0f32; d];
            reduce_lanes(order, &slow, &mut want);
            assert_eq!(out, want, "{order:?} lane sums");
        }
    }
}

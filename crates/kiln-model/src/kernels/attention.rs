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
            let at_pos = |j: usize| (s.blocks[j / bs] as usize * bs + j % bs) * row + g * d;
            let at = ((s.q_row + i) * n_head + h) * d;
            for (o, x) in qr.iter_mut().zip(&q[at..at + d]) {
                *o = f16::from_f32(*x).to_f32();
            }
            scores.clear();
            scores.extend((0..visible).map(|j| {
                let k = &kv.k[at_pos(j)..at_pos(j) + d];
                dot_f16(order, &qr, k) * scale
            }));
            softmax_to_f16(&mut scores);
            // SAFETY: each (query row, head) is written by exactly one task.
            let dst = unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(at), d) };
            let segments = (0..visible.div_ceil(bs)).map(|b| {
                let j0 = b * bs;
                (j0, &scores[j0..visible.min(j0 + bs)], &kv.v[at_pos(j0)..])
            });
            weighted_values(order, segments, row, d, &mut lanes, dst);
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

/// q · k for an f16-rounded query and an f16 key row, summed in `order`.
fn dot_f16(order: SumOrder, q: &[f32], k: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if q.len().is_multiple_of(8) && super::dot::has_avx2() {
        // SAFETY: features checked; q and k both hold a multiple of 8 values.
        return unsafe { avx2::dot_f16(order, q, k) };
    }
    dot_f16_lanes(order, q, k)
}

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
/// Positions come in segments `(j0, p, v)`: probabilities of positions j0.. and their value
/// rows, `stride` apart from `v[0]` (a paged cache's blocks; one segment for a contiguous one).
fn weighted_values<'a>(
    order: SumOrder,
    segments: impl Iterator<Item = (usize, &'a [f32], &'a [f16])>,
    stride: usize,
    d: usize,
    lanes: &mut Vec<f32>,
    out: &mut [f32],
) {
    let groups = match order {
        SumOrder::Tiled => 8,
        SumOrder::VecDot => 32,
    };
    lanes.clear();
    lanes.resize(groups * d, 0.0);
    for (j0, p, v) in segments {
        assert!(
            p.is_empty() || v.len() >= (p.len() - 1) * stride + d,
            "value rows"
        );
        #[cfg(target_arch = "x86_64")]
        if d.is_multiple_of(8) && super::dot::has_avx2() {
            // SAFETY: features checked; every row j < p.len() has d values at j * stride.
            unsafe { avx2::accumulate_values(j0, p, v, stride, d, groups, lanes) };
            continue;
        }
        accumulate_values(j0, p, v, stride, d, groups, lanes);
    }
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

/// Position j0 + j adds into lane group `(j0 + j) % groups` (8 lanes, or 4 accumulators ×
/// 8 lanes).
fn accumulate_values(
    j0: usize,
    p: &[f32],
    v: &[f16],
    stride: usize,
    d: usize,
    groups: usize,
    lanes: &mut [f32],
) {
    for (j, &pj) in p.iter().enumerate() {
        let acc = &mut lanes[((j0 + j) % groups) * d..][..d];
        for (a, x) in acc.iter_mut().zip(&v[j * stride..j * stride + d]) {
            *a = x.to_f32().mul_add(pj, *a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{hsum_tiled, reduce_vec_dot, SumOrder};

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn softmax_to_f16(s: &mut [f32]) {
        super::softmax_to_f16_lanes(s)
    }

    /// [`super::dot_f16_lanes`] with one instruction per 8 lanes; the same sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(order: SumOrder, q: &[f32], k: &[f16]) -> f32 {
        let d = q.len();
        let (qp, kp) = (q.as_ptr(), k.as_ptr() as *const __m128i);
        let lanes = |x: __m256| -> [f32; 8] { std::mem::transmute(x) };
        match order {
            SumOrder::Tiled => {
                let mut acc = _mm256_setzero_ps();
                for c in (0..d).step_by(8) {
                    let kf = _mm256_cvtph_ps(_mm_loadu_si128(kp.add(c / 8)));
                    acc = _mm256_fmadd_ps(kf, _mm256_loadu_ps(qp.add(c)), acc);
                }
                hsum_tiled(&lanes(acc))
            }
            SumOrder::VecDot => {
                let np = d - d % 32;
                let mut acc = [_mm256_setzero_ps(); 4];
                for c in (0..np).step_by(8) {
                    let kf = _mm256_cvtph_ps(_mm_loadu_si128(kp.add(c / 8)));
                    let a = &mut acc[(c / 8) % 4];
                    *a = _mm256_fmadd_ps(kf, _mm256_loadu_ps(qp.add(c)), *a);
                }
                let mut sum = reduce_vec_dot(&acc.map(lanes)) as f64;
                for c in np..d {
                    sum += (k[c].to_f32() * q[c]) as f64;
                }
                sum as f32
            }
        }
    }

    /// [`super::accumulate_values`] with 8 channels per instruction; the same sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn accumulate_values(
        j0: usize,
        p: &[f32],
        v: &[f16],
        stride: usize,
        d: usize,
        groups: usize,
        lanes: &mut [f32],
    ) {
        for (j, pj) in p.iter().enumerate() {
            if *pj == 0.0 {
                continue; // adds exactly zero
            }
            let pv = _mm256_set1_ps(*pj);
            let acc = lanes.as_mut_ptr().add(((j0 + j) % groups) * d);
            let row = v.as_ptr().add(j * stride) as *const __m128i;
            for c in (0..d).step_by(8) {
                let x = _mm256_cvtph_ps(_mm_loadu_si128(row.add(c / 8)));
                let a = acc.add(c);
                _mm256_storeu_ps(a, _mm256_fmadd_ps(x, pv, _mm256_loadu_ps(a)));
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
            for j in 0..n {
                let k = &kv[j * d..(j + 1) * d];
                assert_eq!(
                    dot_f16(order, &q, k).to_bits(),
                    dot_f16_lanes(order, &q, k).to_bits(),
                    "{order:?} key {j}"
                );
            }
            let groups = if order == SumOrder::Tiled { 8 } else { 32 };
            let mut fast = Vec::new();
            let mut out = vec![0f32; d];
            let whole = std::iter::once((0, &p[..], &kv[..]));
            weighted_values(order, whole, d, d, &mut fast, &mut out);
            let mut slow = vec![0f32; groups * d];
            accumulate_values(0, &p, &kv, d, d, groups, &mut slow);
            assert_eq!(fast, slow, "{order:?} value lanes");
        }
    }
}

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
mod avx2;

#[cfg(test)]
mod tests;

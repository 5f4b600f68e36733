//! The AVX2/FMA/F16C inner loops of the cache attention kernel: the same operations per
//! lane and the same summation orders as the portable code in the parent module.

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

//! One quantized weight row against eight activation rows at once: the batched step of the
//! serving engine (eight sequences decoding) and the bulk of prefill. Each weight block is
//! unpacked once for all eight rows, and the per-block scale and offset terms of the eight
//! rows are computed in one vector op each instead of eight scalar ones. Every product and
//! sum is the same IEEE operation, in the same order, as [`super::dot::dot_tile`], so the
//! results are bit-identical to it (and to llama.cpp).

use super::blocks::{ActBlock, QuantKind};

/// The scalars of eight activation rows, regrouped per block so one load covers all eight.
#[derive(Debug, Clone, Default)]
pub struct ActLanes8 {
    /// Per block: the rows' scales d.
    pub d: Vec<[f32; 8]>,
    /// Per block: the rows' d · Σq (Q4_1's offset term).
    pub s: Vec<[f32; 8]>,
    /// Per block: the rows' Σq as f32 (Q4_0's offset term).
    pub isum: Vec<[f32; 8]>,
}

impl ActLanes8 {
    pub fn new(acts: [&[ActBlock]; 8]) -> Self {
        let nb = acts[0].len();
        let lanes = |f: &dyn Fn(&ActBlock) -> f32| -> Vec<[f32; 8]> {
            (0..nb)
                .map(|i| std::array::from_fn(|r| f(&acts[r][i])))
                .collect()
        };
        Self {
            d: lanes(&|a| a.d),
            s: lanes(&|a| a.s),
            isum: lanes(&|a| a.isum as f32),
        }
    }
}

/// out[r] = w · acts[r] for a row `w` of `kind` blocks.
#[inline]
pub fn dot_row_x8(
    kind: QuantKind,
    w: &[u8],
    acts: [&[ActBlock]; 8],
    lanes: &ActLanes8,
) -> [f32; 8] {
    #[cfg(target_arch = "x86_64")]
    if super::dot::has_avx2() {
        // SAFETY: features checked; `w` holds as many blocks as each activation row.
        return unsafe {
            match kind {
                QuantKind::Q4_0 => avx2::dot_row_x8::<0>(w, acts, lanes),
                QuantKind::Q4_1 => avx2::dot_row_x8::<1>(w, acts, lanes),
                QuantKind::Q8_0 => avx2::dot_row_x8::<2>(w, acts, lanes),
            }
        };
    }
    let _ = lanes;
    super::dot::dot_rows_scalar::<8>(kind, w, acts)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::blocks::{ActBlock, QuantKind};
    use super::super::dot::avx2::{f16_ptr, hsum};
    use super::ActLanes8;

    /// `KIND` is 0, 1, 2 for Q4_0, Q4_1, Q8_0: a constant, so each kind compiles to a loop
    /// without branches (and with registers to spare for the eight accumulators).
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` holds `acts[r].len()` blocks of that kind, as do `lanes`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_row_x8<const KIND: u8>(
        w: &[u8],
        acts: [&[ActBlock]; 8],
        lanes: &ActLanes8,
    ) -> [f32; 8] {
        let kind = match KIND {
            0 => QuantKind::Q4_0,
            1 => QuantKind::Q4_1,
            _ => QuantKind::Q8_0,
        };
        let bb = kind.block_bytes();
        let nb = acts[0].len();
        let mut acc = [_mm256_setzero_ps(); 8];
        // Lane r: row r's offset term, summed over blocks in order like dot_tile's scalar.
        let mut extra = _mm256_setzero_ps();
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        // d · a.d per (block, row), computed a chunk of blocks ahead so the main loop reads
        // each as a broadcast load instead of shuffling it out of a register.
        const CHUNK: usize = 32;
        let mut scale = [[0f32; 8]; CHUNK];
        for c0 in (0..nb).step_by(CHUNK) {
            let c1 = nb.min(c0 + CHUNK);
            for i in c0..c1 {
                let b = w.as_ptr().add(i * bb);
                let d = f16_ptr(b);
                let ad = _mm256_loadu_ps(lanes.d.get_unchecked(i).as_ptr());
                // The same products dot_tile forms one by one.
                let sc = _mm256_mul_ps(_mm256_set1_ps(d), ad);
                _mm256_storeu_ps(scale.get_unchecked_mut(i - c0).as_mut_ptr(), sc);
                if kind == QuantKind::Q4_1 {
                    let m = _mm256_set1_ps(f16_ptr(b.add(2)));
                    let s = _mm256_loadu_ps(lanes.s.get_unchecked(i).as_ptr());
                    extra = _mm256_add_ps(extra, _mm256_mul_ps(m, s));
                } else if kind == QuantKind::Q4_0 {
                    // (m · a.d) · Σq with m = -8 d, as dot_tile's scalar expression.
                    let m = _mm256_set1_ps(-8.0 * d);
                    let is = _mm256_loadu_ps(lanes.isum.get_unchecked(i).as_ptr());
                    extra = _mm256_add_ps(extra, _mm256_mul_ps(_mm256_mul_ps(m, ad), is));
                }
            }
            // Opaque to the optimiser, which would otherwise forward the stores above into
            // register shuffles: the broadcast loads are the point.
            let scale = std::hint::black_box(&scale);
            for i in c0..c1 {
                let b = w.as_ptr().add(i * bb);
                let wv = match kind {
                    QuantKind::Q4_0 | QuantKind::Q4_1 => {
                        let off = if kind == QuantKind::Q4_1 { 4 } else { 2 };
                        let q = _mm_loadu_si128(b.add(off) as *const __m128i);
                        let lo = _mm_and_si128(q, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                        _mm256_set_m128i(hi, lo)
                    }
                    QuantKind::Q8_0 => _mm256_loadu_si256(b.add(2) as *const __m256i),
                };
                let (wu, sign) = match kind {
                    QuantKind::Q8_0 => (_mm256_sign_epi8(wv, wv), Some(wv)),
                    _ => (wv, None),
                };
                let sc = scale.get_unchecked(i - c0);
                for r in 0..8 {
                    let a = acts[r].get_unchecked(i);
                    let mut av = _mm256_load_si256(a.qs.as_ptr() as *const __m256i);
                    if let Some(sg) = sign {
                        av = _mm256_sign_epi8(av, sg);
                    }
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wu, av), ones);
                    acc[r] = _mm256_fmadd_ps(
                        _mm256_broadcast_ss(sc.get_unchecked(r)),
                        _mm256_cvtepi32_ps(p),
                        acc[r],
                    );
                }
            }
        }
        let mut ex = [0f32; 8];
        _mm256_storeu_ps(ex.as_mut_ptr(), extra);
        std::array::from_fn(|r| hsum(acc[r]) + ex[r])
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks::{quantize_row, QK};
    use super::super::dot::dot_tile;
    use super::*;

    #[test]
    fn eight_rows_at_once_equal_one_at_a_time_bit_for_bit() {
        let nb = 11;
        let mut s = 99u32;
        let mut next = || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as u8
        };
        let acts: Vec<Vec<ActBlock>> = (0..8)
            .map(|r| {
                let x: Vec<f32> = (0..nb * QK)
                    .map(|i| (((i * 31 + r * 7) % 53) as f32 - 26.0) / (3.0 + r as f32))
                    .collect();
                let mut a = vec![ActBlock::default(); nb];
                quantize_row(&x, &mut a);
                a
            })
            .collect();
        let rows: [&[ActBlock]; 8] = std::array::from_fn(|r| &acts[r][..]);
        let lanes = ActLanes8::new(rows);
        for kind in [QuantKind::Q4_0, QuantKind::Q4_1, QuantKind::Q8_0] {
            let mut w: Vec<u8> = Vec::new();
            for _ in 0..nb {
                let mut b: Vec<u8> = (0..kind.block_bytes()).map(|_| next()).collect();
                b[1] = 0x20 | (b[1] & 0x83);
                if kind == QuantKind::Q4_1 {
                    b[3] = 0x20 | (b[3] & 0x83);
                }
                w.extend(b);
            }
            let got = dot_row_x8(kind, &w, rows, &lanes);
            for r in 0..8 {
                let one = dot_tile::<1, 1>(kind, [&w], [rows[r]])[0][0];
                assert_eq!(got[r].to_bits(), one.to_bits(), "{kind:?} row {r}");
            }
        }
    }
}

//! Dot products of one quantized weight row with R quantized activation rows at once, so
//! each weight block is unpacked once and used R times (prefill), or R = 1 (decode).

use super::blocks::{f16_at, ActBlock, QuantKind};

/// Portable reference: integer dot per block, scaled like ggml.
#[allow(clippy::needless_range_loop)] // low and high nibbles index two halves
pub fn dot_rows_scalar<const R: usize>(
    kind: QuantKind,
    w: &[u8],
    acts: [&[ActBlock]; R],
) -> [f32; R] {
    let bb = kind.block_bytes();
    let mut out = [0f32; R];
    for (i, b) in w.chunks_exact(bb).enumerate() {
        let d = f16_at(b, 0);
        for (r, a) in acts.iter().enumerate() {
            let a = &a[i];
            match kind {
                QuantKind::Q4_0 | QuantKind::Q4_1 => {
                    let qs = if kind == QuantKind::Q4_1 {
                        &b[4..20]
                    } else {
                        &b[2..18]
                    };
                    let mut s = 0i32;
                    for j in 0..16 {
                        s += (qs[j] & 0x0F) as i32 * a.qs[j] as i32;
                        s += (qs[j] >> 4) as i32 * a.qs[j + 16] as i32;
                    }
                    out[r] += if kind == QuantKind::Q4_1 {
                        d * a.d * s as f32 + f16_at(b, 2) * a.s
                    } else {
                        d * a.d * (s - 8 * a.isum) as f32
                    };
                }
                QuantKind::Q8_0 => {
                    let s: i32 = (0..32)
                        .map(|j| b[2 + j] as i8 as i32 * a.qs[j] as i32)
                        .sum();
                    out[r] += d * a.d * s as f32;
                }
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use super::super::blocks::{ActBlock, QuantKind};

    /// The little-endian f16 at `p` as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) unsafe fn f16_ptr(p: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// Sum of 8 lanes: halves added, then pairs, then the last two (the order every quantized
    /// dot product here, and ggml's, reduces in).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; each `w[i]` holds `acts[r].len()` blocks of
    /// `kind`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_tile<const RW: usize, const RA: usize>(
        kind: QuantKind,
        w: [&[u8]; RW],
        acts: [&[ActBlock]; RA],
    ) -> [[f32; RA]; RW] {
        let bb = kind.block_bytes();
        let nb = w[0].len() / bb;
        // Independent accumulator chains per (weight row, activation row) hide FMA latency.
        let mut acc = [[_mm256_setzero_ps(); RA]; RW];
        let mut extra = [[0f32; RA]; RW];
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        for i in 0..nb {
            for c in 0..RW {
                let b = w[c].as_ptr().add(i * bb);
                if RA == 1 {
                    // Decode streams each weight byte once: fetch the same block of the
                    // next group of rows (the caller walks consecutive rows).
                    _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(RW * w[0].len()) as *const i8);
                }
                let d = f16_ptr(b);
                match kind {
                    QuantKind::Q4_0 | QuantKind::Q4_1 => {
                        let off = if kind == QuantKind::Q4_1 { 4 } else { 2 };
                        let q = _mm_loadu_si128(b.add(off) as *const __m128i);
                        let lo = _mm_and_si128(q, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                        let wv = _mm256_set_m128i(hi, lo);
                        let m = if kind == QuantKind::Q4_1 {
                            f16_ptr(b.add(2))
                        } else {
                            -8.0 * d
                        };
                        for r in 0..RA {
                            let a = acts[r].get_unchecked(i);
                            let av = _mm256_load_si256(a.qs.as_ptr() as *const __m256i);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones);
                            acc[c][r] = _mm256_fmadd_ps(
                                _mm256_set1_ps(d * a.d),
                                _mm256_cvtepi32_ps(p),
                                acc[c][r],
                            );
                            extra[c][r] += if kind == QuantKind::Q4_1 {
                                m * a.s
                            } else {
                                m * a.d * a.isum as f32
                            };
                        }
                    }
                    QuantKind::Q8_0 => {
                        let wv = _mm256_loadu_si256(b.add(2) as *const __m256i);
                        let wabs = _mm256_sign_epi8(wv, wv);
                        for r in 0..RA {
                            let a = acts[r].get_unchecked(i);
                            let av = _mm256_load_si256(a.qs.as_ptr() as *const __m256i);
                            let sy = _mm256_sign_epi8(av, wv);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, sy), ones);
                            acc[c][r] = _mm256_fmadd_ps(
                                _mm256_set1_ps(d * a.d),
                                _mm256_cvtepi32_ps(p),
                                acc[c][r],
                            );
                        }
                    }
                }
            }
        }
        let mut out = [[0f32; RA]; RW];
        for c in 0..RW {
            for r in 0..RA {
                out[c][r] = hsum(acc[c][r]) + extra[c][r];
            }
        }
        out
    }
}

/// Whether the AVX2 path can run here (checked once).
/// Whether the CPU has AVX-512F (with AVX2 and FMA): elementwise training kernels then run
/// 16 lanes wide.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| has_avx2() && is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dots of weight rows `w` (blocks of `kind`) with each of `acts`: out[c][r] = w[c] · acts[r].
#[inline]
pub fn dot_tile<const RW: usize, const RA: usize>(
    kind: QuantKind,
    w: [&[u8]; RW],
    acts: [&[ActBlock]; RA],
) -> [[f32; RA]; RW] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: features checked above; block counts are the caller's contract.
        return unsafe { avx2::dot_tile::<RW, RA>(kind, w, acts) };
    }
    let mut out = [[0f32; RA]; RW];
    for c in 0..RW {
        out[c] = dot_rows_scalar::<RA>(kind, w[c], acts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::blocks::{dequantize_block, quantize_row, QK};
    use super::*;

    fn random_blocks(kind: QuantKind, nb: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as u8
        };
        let mut w = Vec::new();
        for _ in 0..nb {
            let mut b: Vec<u8> = (0..kind.block_bytes()).map(|_| next()).collect();
            // Small positive/negative f16 scales (0x2000.. ≈ 0.0078..) keep values finite.
            b[0] = next();
            b[1] = 0x20 | (next() & 0x83);
            if kind == QuantKind::Q4_1 {
                b[2] = next();
                b[3] = 0x20 | (next() & 0x83);
            }
            w.extend(b);
        }
        w
    }

    #[test]
    fn simd_dot_matches_scalar_and_float_reference() {
        let nb = 18;
        let x: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                (0..nb * QK)
                    .map(|i| (((i * 31 + r * 7) % 53) as f32 - 26.0) / 9.0)
                    .collect()
            })
            .collect();
        let acts: Vec<Vec<ActBlock>> = x
            .iter()
            .map(|row| {
                let mut a = vec![ActBlock::default(); nb];
                quantize_row(row, &mut a);
                a
            })
            .collect();
        for kind in [QuantKind::Q4_0, QuantKind::Q4_1, QuantKind::Q8_0] {
            let w = random_blocks(kind, nb, 7);
            let refs = [&acts[0][..], &acts[1][..], &acts[2][..], &acts[3][..]];
            let w2 = random_blocks(kind, nb, 11);
            let tile = dot_tile::<2, 4>(kind, [&w2, &w], refs);
            let fast = tile[1];
            let other = dot_rows_scalar::<4>(kind, &w2, refs);
            for r in 0..4 {
                assert!((tile[0][r] - other[r]).abs() < 1e-3 * other[r].abs().max(1.0));
            }
            let slow = dot_rows_scalar::<4>(kind, &w, refs);
            // Float reference: dequantized weights · dequantized activations.
            let mut wf = vec![0f32; nb * QK];
            for (i, b) in w.chunks(kind.block_bytes()).enumerate() {
                dequantize_block(kind, b, &mut wf[i * QK..(i + 1) * QK]);
            }
            for r in 0..4 {
                let af: Vec<f32> = acts[r]
                    .iter()
                    .flat_map(|a| a.qs.iter().map(move |&q| q as f32 * a.d))
                    .collect();
                let want: f32 = wf.iter().zip(&af).map(|(a, b)| a * b).sum();
                let tol = 1e-3 * want.abs().max(1.0);
                assert!(
                    (fast[r] - slow[r]).abs() < tol,
                    "{kind:?} simd {} vs scalar {}",
                    fast[r],
                    slow[r]
                );
                // Q4_1's min term uses s (rounded through f16), so allow its rounding.
                let tol = if kind == QuantKind::Q4_1 {
                    2e-2 * want.abs().max(1.0)
                } else {
                    tol
                };
                assert!(
                    (slow[r] - want).abs() < tol,
                    "{kind:?} scalar {} vs float {want}",
                    slow[r]
                );
            }
            let one = dot_tile::<4, 1>(kind, [&w, &w2, &w, &w], [&acts[2][..]]);
            assert!((one[0][0] - fast[2]).abs() < 1e-3 * fast[2].abs().max(1.0));
            assert!((one[1][0] - other[2]).abs() < 1e-3 * other[2].abs().max(1.0));
        }
    }
}

//! ggml's vectorised transcendental functions written out per lane, so kiln's activations
//! round exactly as llama.cpp's CPU backend rounds them (last-bit differences flip int8
//! quantization of the next matmul's input and greedy decoding drifts within a few dozen
//! tokens on small models).

/// ggml's vectorised `expf` (`ggml_v_expf`), one lane at a time: a degree-5 polynomial on
/// the reduced argument with the exponent added back in the bits. Differs from libm's
/// `expf` in the last bit, which the f16 rounding of probabilities then exposes.
#[inline(always)]
pub fn expf_ggml(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 1.5 · 2^23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // log2(e)
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // ln 2, split in two
    );
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010)
        .mul_add(b, f32::from_bits(0x3d2b_9f17))
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)),
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// SiLU as `ggml_v_silu`: x / (1 + exp(-x)) with [`expf_ggml`].
#[inline(always)]
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + expf_ggml(-x))
}

/// `y[i] = silu(gate[i]) · up[i]` (ggml's `swiglu`).
pub fn swiglu(gate: &[f32], up: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::dot::has_avx2() {
        // SAFETY: features checked; plain scalar code compiled with FMA so `mul_add` is an
        // instruction, not a libm call.
        return unsafe { swiglu_fma(gate, up, y) };
    }
    swiglu_lanes(gate, up, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_fma(gate: &[f32], up: &[f32], y: &mut [f32]) {
    swiglu_lanes(gate, up, y)
}

#[inline(always)]
fn swiglu_lanes(gate: &[f32], up: &[f32], y: &mut [f32]) {
    for ((o, g), u) in y.iter_mut().zip(gate).zip(up) {
        *o = silu_ggml(*g) * u;
    }
}

/// [`expf_ggml`] eight lanes at a time: the same operations in the same order, so every
/// lane is bit-identical to the scalar function.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn expf8(x: __m256) -> __m256 {
        let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
        let r = c(0x4b40_0000);
        let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
        let n = _mm256_sub_ps(z, r);
        // fnmadd(n, c, y) is fma(-n, c, y), as the scalar form writes it.
        let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
        let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            e,
            _mm256_set1_epi32(1f32.to_bits() as i32),
        ));
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
                u,
                _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
            ),
            u,
            _mm256_mul_ps(c(0x3f7f_fff6), b),
        );
        let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        let far = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
        if _mm256_movemask_ps(far) == 0 {
            return _mm256_fmadd_ps(j, k, k);
        }
        // Under- or overflowing lanes are rare (probabilities of far-below-max scores): the
        // scalar function handles its special cases per lane.
        let lanes: [f32; 8] = std::mem::transmute(x);
        std::mem::transmute(lanes.map(super::expf_ggml))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_silu_are_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (expf_ggml(x), (x as f64).exp() as f32);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {got}, libm {want}");
            let s = silu_ggml(x);
            let w = (x as f64 / (1.0 + (-x as f64).exp())) as f32;
            assert!(
                (s - w).abs() <= 4.0 * f32::EPSILON * w.abs().max(1e-30),
                "silu({x})"
            );
            x += 0.173;
        }
        assert_eq!(expf_ggml(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf_ggml(0.0), 1.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_lane_exp_equals_the_scalar_one_bit_for_bit() {
        if !crate::kernels::dot::has_avx2() {
            return;
        }
        // Ordinary arguments, and chunks that mix in the far (under/overflow) lanes.
        let mut xs: Vec<f32> = (0..4000).map(|i| (i as f32 - 3000.0) * 0.0431).collect();
        xs.extend([
            -200.0,
            -150.0,
            0.0,
            -0.5,
            -127.0,
            100.0,
            f32::NEG_INFINITY,
            -88.0,
        ]);
        for chunk in xs.chunks_exact(8) {
            // SAFETY: features checked above.
            let lanes: [f32; 8] = chunk.try_into().unwrap();
            let got: [f32; 8] = unsafe {
                use std::arch::x86_64::__m256;
                let x = std::mem::transmute::<[f32; 8], __m256>(lanes);
                std::mem::transmute::<__m256, [f32; 8]>(avx2::expf8(x))
            };
            for (g, x) in got.iter().zip(chunk) {
                assert_eq!(g.to_bits(), expf_ggml(*x).to_bits(), "exp({x})");
            }
        }
    }

    #[test]
    fn fma_and_portable_paths_agree_bit_for_bit() {
        let g: Vec<f32> = (0..999).map(|i| (i as f32 - 500.0) * 0.037).collect();
        let u: Vec<f32> = (0..999).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let (mut a, mut b) = (vec![0f32; 999], vec![0f32; 999]);
        swiglu(&g, &u, &mut a);
        swiglu_lanes(&g, &u, &mut b);
        assert_eq!(a, b);
    }
}

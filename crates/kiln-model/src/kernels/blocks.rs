//! GGUF block layouts (ggml's `block_q4_0`, `block_q4_1`, `block_q8_0`) and kiln's activation
//! block, which quantizes a row of activations to int8 per 32 values exactly as ggml's
//! `quantize_row_q8_1` does (scale and sum rounded through f16), so dot products match
//! llama.cpp's.

use half::f16;

/// Values per block in every format here.
pub const QK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantKind {
    /// value = (q - 8) · d, q in 0..16
    Q4_0,
    /// value = q · d + m, q in 0..16
    Q4_1,
    /// value = q · d, q in -128..128
    Q8_0,
}

impl QuantKind {
    /// Bytes per block of 32 values.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantKind::Q4_0 => 18,
            QuantKind::Q4_1 => 20,
            QuantKind::Q8_0 => 34,
        }
    }
}

#[inline]
pub fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Dequantizes one block's bytes into 32 floats (the reference the SIMD dots are tested
/// against, and the path for embeddings).
pub fn dequantize_block(kind: QuantKind, b: &[u8], out: &mut [f32]) {
    match kind {
        QuantKind::Q4_0 | QuantKind::Q4_1 => {
            let d = f16_at(b, 0);
            let (m, qs) = match kind {
                QuantKind::Q4_1 => (f16_at(b, 2), &b[4..20]),
                _ => (-8.0 * d, &b[2..18]),
            };
            for j in 0..16 {
                out[j] = (qs[j] & 0x0F) as f32 * d + m;
                out[j + 16] = (qs[j] >> 4) as f32 * d + m;
            }
        }
        QuantKind::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                out[j] = b[2 + j] as i8 as f32 * d;
            }
        }
    }
}

/// 32 activations as int8 with their scale `d` and `s = d · Σq` (both rounded through f16
/// like ggml's `block_q8_1`), plus the exact integer sum for Q4_0's offset.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub struct ActBlock {
    pub qs: [i8; QK],
    pub d: f32,
    pub s: f32,
    pub isum: i32,
}

impl Default for ActBlock {
    fn default() -> Self {
        Self {
            qs: [0; QK],
            d: 0.0,
            s: 0.0,
            isum: 0,
        }
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out`.
pub fn quantize_row(x: &[f32], out: &mut [ActBlock]) {
    #[cfg(target_arch = "x86_64")]
    if super::dot::has_avx2() {
        // SAFETY: features checked; the scalar body is compiled with AVX2 so the rounding
        // is `vroundps` (half to even, as `round_ties_even`) instead of a libm call.
        return unsafe { quantize_row_avx2(x, out) };
    }
    quantize_row_portable(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row_avx2(x: &[f32], out: &mut [ActBlock]) {
    quantize_row_portable(x, out)
}

#[inline(always)]
fn quantize_row_portable(x: &[f32], out: &mut [ActBlock]) {
    for (xb, ob) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        // Exactly ggml's x86 quantize_row_q8_1: multiply by 127/amax (not divide by d)
        // and round half to even, so every int8 matches llama.cpp's.
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in ob.qs.iter_mut().zip(xb) {
            let r = (v * id).round_ties_even() as i32;
            *q = r as i8;
            sum += r;
        }
        ob.d = f16::from_f32(d).to_f32();
        ob.s = f16::from_f32(d * sum as f32).to_f32();
        ob.isum = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_row_reconstructs_within_half_a_step() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 7919) % 97) as f32 / 13.0 - 3.5)
            .collect();
        let mut blocks = vec![ActBlock::default(); 2];
        quantize_row(&x, &mut blocks);
        for (b, xb) in blocks.iter().zip(x.chunks(32)) {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (q, v) in b.qs.iter().zip(xb) {
                assert!((*q as f32 * b.d - v).abs() <= amax / 127.0 * 0.5 + 1e-2);
            }
            assert_eq!(b.isum, b.qs.iter().map(|&q| q as i32).sum::<i32>());
        }
    }
}

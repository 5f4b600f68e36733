//! Dequantization of every GGUF block format kiln reads (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q2_K..Q6_K), checked against a naive reference written here from the ggml format:
//! the block structs in ggml's `ggml-common.h` (field order and sizes) and the arithmetic
//! of `dequantize_row_*` in `ggml-quants.c`.
//!
//! The reference is deliberately written per element (index in, value out) rather than as
//! ggml's pointer-walking loops, so it is an independent reading of the layout. Each format
//! gets deterministic pseudo-random block bytes with sane f16 scales (small finite values,
//! zero and subnormals included), and three implementations are compared with it:
//!
//! * candle's `QTensor::dequantize` (what kiln's GGUF path runs for every type),
//! * kiln's own `kernels::blocks::dequantize_block` (Q4_0, Q4_1, Q8_0),
//! * a GGUF file written and read back through kiln's `GgufFile` / `GgufSource`, which must
//!   hand the tensors back still quantized and bit-for-bit the same.
//!
//! No `half` here: integration tests see only the crate's dev-dependencies, so f16 is
//! decoded by hand (exactly, subnormals included).

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::Device;
use kiln_model::kernels::blocks::{dequantize_block, QuantKind};
use kiln_model::layers::Weight;
use kiln_model::weights::gguf::{GgufFile, GgufSource};
use kiln_model::weights::WeightSource;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const QK: usize = 32;
const QK_K: usize = 256;

// ---------------------------------------------------------------------------------------
// Deterministic bytes
// ---------------------------------------------------------------------------------------

/// splitmix64: small, deterministic, good enough to fill quant bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next_u64() as u8;
        }
    }

    /// Bits of a small finite f16: |x| < 0.125, either sign, with zero (both signs) and
    /// subnormals turning up now and then. Never Inf or NaN.
    fn sane_f16_bits(&mut self) -> u16 {
        let sign = (self.below(2) as u16) << 15;
        let mant = self.below(1 << 10) as u16;
        match self.below(16) {
            0 => sign,        // ±0
            1 => sign | mant, // subnormal (or zero)
            _ => {
                // exponent field 1..=11: 2^-14 .. just under 2^-3
                let exp = 1 + self.below(11) as u16;
                sign | (exp << 10) | mant
            }
        }
    }
}

fn put_f16(b: &mut [u8], at: usize, bits: u16) {
    b[at..at + 2].copy_from_slice(&bits.to_le_bytes());
}

/// Exact IEEE binary16 -> f32 (both are binary formats, f32 holds every f16 value).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1F) as i32;
    let mant = (bits & 0x3FF) as f32;
    match exp {
        0 => sign * mant * 2f32.powi(-24),
        31 => {
            if mant == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => sign * (1024.0 + mant) * 2f32.powi(e - 25),
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

// ---------------------------------------------------------------------------------------
// The formats, from ggml-common.h
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

const ALL: [Fmt; 10] = [
    Fmt::Q4_0,
    Fmt::Q4_1,
    Fmt::Q5_0,
    Fmt::Q5_1,
    Fmt::Q8_0,
    Fmt::Q2K,
    Fmt::Q3K,
    Fmt::Q4K,
    Fmt::Q5K,
    Fmt::Q6K,
];

impl Fmt {
    fn ggml(self) -> GgmlDType {
        match self {
            Fmt::Q4_0 => GgmlDType::Q4_0,
            Fmt::Q4_1 => GgmlDType::Q4_1,
            Fmt::Q5_0 => GgmlDType::Q5_0,
            Fmt::Q5_1 => GgmlDType::Q5_1,
            Fmt::Q8_0 => GgmlDType::Q8_0,
            Fmt::Q2K => GgmlDType::Q2K,
            Fmt::Q3K => GgmlDType::Q3K,
            Fmt::Q4K => GgmlDType::Q4K,
            Fmt::Q5K => GgmlDType::Q5K,
            Fmt::Q6K => GgmlDType::Q6K,
        }
    }

    /// Values per block.
    fn block_len(self) -> usize {
        match self {
            Fmt::Q4_0 | Fmt::Q4_1 | Fmt::Q5_0 | Fmt::Q5_1 | Fmt::Q8_0 => QK,
            _ => QK_K,
        }
    }

    /// Bytes per block, summed from the struct fields.
    fn block_bytes(self) -> usize {
        match self {
            Fmt::Q4_0 => 2 + QK / 2,                         // d, qs[16]
            Fmt::Q4_1 => 2 + 2 + QK / 2,                     // d, m, qs[16]
            Fmt::Q5_0 => 2 + 4 + QK / 2,                     // d, qh[4], qs[16]
            Fmt::Q5_1 => 2 + 2 + 4 + QK / 2,                 // d, m, qh[4], qs[16]
            Fmt::Q8_0 => 2 + QK,                             // d, qs[32]
            Fmt::Q2K => QK_K / 16 + QK_K / 4 + 2 + 2,        // scales, qs, d, dmin
            Fmt::Q3K => QK_K / 8 + QK_K / 4 + 12 + 2,        // hmask, qs, scales, d
            Fmt::Q4K => 2 + 2 + 12 + QK_K / 2,               // d, dmin, scales, qs
            Fmt::Q5K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,    // d, dmin, scales, qh, qs
            Fmt::Q6K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, // ql, qh, scales, d
        }
    }

    /// Byte offsets of the block's f16 fields.
    fn f16_fields(self) -> &'static [usize] {
        match self {
            Fmt::Q4_0 | Fmt::Q5_0 | Fmt::Q8_0 => &[0],
            Fmt::Q4_1 | Fmt::Q5_1 | Fmt::Q4K | Fmt::Q5K => &[0, 2],
            Fmt::Q2K => &[80, 82],
            Fmt::Q3K => &[108],
            Fmt::Q6K => &[208],
        }
    }

    /// Random block bytes with sane f16 fields.
    fn random_blocks(self, n_blocks: usize, rng: &mut Rng) -> Vec<u8> {
        let bb = self.block_bytes();
        let mut bytes = vec![0u8; n_blocks * bb];
        for blk in bytes.chunks_exact_mut(bb) {
            rng.fill(blk);
            for &at in self.f16_fields() {
                put_f16(blk, at, rng.sane_f16_bits());
            }
        }
        bytes
    }

    /// The reference: value `i` (0..block_len) of one block.
    fn value(self, b: &[u8], i: usize) -> f32 {
        match self {
            Fmt::Q4_0 => {
                let d = f16_at(b, 0);
                let q = nibble(&b[2..18], i) as i32 - 8;
                q as f32 * d
            }
            Fmt::Q4_1 => {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let q = nibble(&b[4..20], i);
                q as f32 * d + m
            }
            Fmt::Q5_0 => {
                let d = f16_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let q = (nibble(&b[6..22], i) | ((((qh >> i) & 1) as u8) << 4)) as i32 - 16;
                q as f32 * d
            }
            Fmt::Q5_1 => {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let q = nibble(&b[8..24], i) | ((((qh >> i) & 1) as u8) << 4);
                q as f32 * d + m
            }
            Fmt::Q8_0 => {
                let d = f16_at(b, 0);
                (b[2 + i] as i8) as f32 * d
            }
            Fmt::Q2K => {
                // 2 halves of 128; each: 4 two-bit planes (shift 0,2,4,6) over qs[32],
                // 16 values per scale byte (low nibble scale, high nibble min).
                let (scales, qs) = (&b[0..16], &b[16..80]);
                let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
                let (half, plane, l) = (i / 128, (i % 128) / 32, i % 32);
                let sub = half * 8 + plane * 2 + l / 16;
                let q = (qs[half * 32 + l] >> (2 * plane)) & 3;
                let sc = scales[sub];
                let dl = d * (sc & 0xF) as f32;
                let ml = dmin * (sc >> 4) as f32;
                dl * q as f32 - ml
            }
            Fmt::Q3K => {
                let (hmask, qs, scales) = (&b[0..32], &b[32..96], &b[96..108]);
                let d = f16_at(b, 108);
                let (half, plane, l) = (i / 128, (i % 128) / 32, i % 32);
                let sub = half * 8 + plane * 2 + l / 16;
                let low = ((qs[half * 32 + l] >> (2 * plane)) & 3) as i32;
                // hmask is not split per half: hmask[l] holds the high bit of value l of
                // all eight 32-value groups, group g = 4 * half + plane in bit g (ggml
                // walks a mask m = 1, 2, 4, .. 128 over the groups in order).
                let high_set = hmask[l] & (1 << (4 * half + plane)) != 0;
                let q = low - if high_set { 0 } else { 4 };
                let dl = d * (q3k_scale(scales, sub) - 32) as f32;
                dl * q as f32
            }
            Fmt::Q4K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let (scales, qs) = (&b[4..16], &b[16..144]);
                let (chunk, hi, l) = (i / 64, (i % 64) / 32, i % 32);
                let (sc, m) = k4_scale_min(scales, chunk * 2 + hi);
                let byte = qs[chunk * 32 + l];
                let q = if hi == 1 { byte >> 4 } else { byte & 0xF };
                (d * sc as f32) * q as f32 - dmin * m as f32
            }
            Fmt::Q5K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
                let (chunk, hi, l) = (i / 64, (i % 64) / 32, i % 32);
                let (sc, m) = k4_scale_min(scales, chunk * 2 + hi);
                let byte = qs[chunk * 32 + l];
                let low = if hi == 1 { byte >> 4 } else { byte & 0xF };
                let high = (qh[l] >> (2 * chunk + hi)) & 1;
                let q = low | (high << 4);
                (d * sc as f32) * q as f32 - dmin * m as f32
            }
            Fmt::Q6K => {
                let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = f16_at(b, 208);
                let (half, quarter, l) = (i / 128, (i % 128) / 32, i % 32);
                let (ql, qh) = (&ql[half * 64..], &qh[half * 32..]);
                let low = match quarter {
                    0 => ql[l] & 0xF,
                    1 => ql[l + 32] & 0xF,
                    2 => ql[l] >> 4,
                    _ => ql[l + 32] >> 4,
                };
                let high = (qh[l] >> (2 * quarter)) & 3;
                let q = (low | (high << 4)) as i32 - 32;
                // One i8 scale per 16 values, in value order: the quarter's two sub-blocks
                // are scales 2 * quarter and 2 * quarter + 1 of this half's eight.
                let sc = scales[half * 8 + 2 * quarter + l / 16] as i8;
                (d * sc as f32) * q as f32
            }
        }
    }

    fn reference(self, bytes: &[u8]) -> Vec<f32> {
        let (bb, n) = (self.block_bytes(), self.block_len());
        assert_eq!(bytes.len() % bb, 0);
        bytes
            .chunks_exact(bb)
            .flat_map(|blk| (0..n).map(move |i| self.value(blk, i)))
            .collect()
    }
}

/// 32-value blocks keep values 0..16 in the low nibbles of qs[0..16], 16..32 in the high.
fn nibble(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0xF
    } else {
        qs[i - 16] >> 4
    }
}

/// Q3_K's 16 six-bit scales in 12 bytes: low nibbles in bytes 0..8 (scale s < 8 in the low
/// nibble of byte s, s >= 8 in the high nibble of byte s-8), the top two bits in bytes
/// 8..12 (byte 8 + s%4, bit pair s/4). Stored with a +32 bias.
fn q3k_scale(s: &[u8], sub: usize) -> i32 {
    let low = if sub < 8 {
        s[sub] & 0xF
    } else {
        s[sub - 8] >> 4
    };
    let high = (s[8 + sub % 4] >> (2 * (sub / 4))) & 3;
    (low | (high << 4)) as i32
}

/// Q4_K/Q5_K's 8 six-bit (scale, min) pairs in 12 bytes (ggml's `get_scale_min_k4`):
/// pairs 0..4 are the low 6 bits of bytes j and j+4; pairs 4..8 take their low nibbles from
/// byte j+4 (scale low, min high) and their top two bits from the spare top bits of bytes
/// j-4 (scale) and j (min) -- bytes 0..4 and 4..8, i.e. the bytes that pairs 0..4 use.
fn k4_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// Every element equal to the reference, or within 1e-6 relative. Returns how many were
/// bit-for-bit equal (as f32 values; +0 == -0). `block_len` only labels failures.
fn compare(what: &str, block_len: usize, got: &[f32], want: &[f32]) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut exact = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(w.is_finite(), "{what}: reference value {i} is {w}");
        if g == w {
            exact += 1;
            continue;
        }
        let tol = 1e-6 * g.abs().max(w.abs());
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i} (block {}, index {}): got {g:e}, reference {w:e}",
            i / block_len,
            i % block_len
        );
    }
    exact
}

/// Copies bytes into u64-backed storage so candle's `&[u8] -> &[Block]` cast sees an
/// aligned pointer whatever the allocator hands a `Vec<u8>`.
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    for (i, &b) in bytes.iter().enumerate() {
        v[i / 8] |= (b as u64) << (8 * (i % 8));
    }
    v
}

fn as_bytes(v: &[u64], len: usize) -> &[u8] {
    // SAFETY: u64 has no padding or invalid bit patterns; u8 has alignment 1; `len` is at
    // most the slice's size in bytes.
    assert!(len <= v.len() * 8);
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, len) }
}

fn candle_qtensor(
    fmt: Fmt,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> candle_core::Result<QTensor> {
    let buf = aligned(bytes);
    let data = as_bytes(&buf, bytes.len());
    let storage = QStorage::from_data(Cow::Borrowed(data), &Device::Cpu, fmt.ggml())?;
    QTensor::new(storage, (rows, cols))
}

/// (rows, cols, bytes) for `fmt`: several rows of several blocks each.
fn sample(fmt: Fmt, seed: u64) -> (usize, usize, Vec<u8>) {
    let rows = 5;
    let blocks_per_row = if fmt.block_len() == QK { 8 } else { 3 };
    let cols = blocks_per_row * fmt.block_len();
    let mut rng = Rng::new(seed ^ (fmt as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let bytes = fmt.random_blocks(rows * blocks_per_row, &mut rng);
    (rows, cols, bytes)
}

fn check_candle(fmt: Fmt) -> TestResult {
    let mut exact = 0;
    let mut total = 0;
    for seed in [1u64, 2, 3, 0xDEAD_BEEF] {
        let (rows, cols, bytes) = sample(fmt, seed);
        let want = fmt.reference(&bytes);
        let qt = candle_qtensor(fmt, &bytes, rows, cols)?;
        assert_eq!(qt.dtype(), fmt.ggml());
        let t = qt.dequantize(&Device::Cpu)?;
        assert_eq!(t.dims(), &[rows, cols]);
        let got = t.flatten_all()?.to_vec1::<f32>()?;
        exact += compare(
            &format!("candle {fmt:?} seed {seed}"),
            fmt.block_len(),
            &got,
            &want,
        );
        total += want.len();
    }
    eprintln!("candle {fmt:?}: {exact}/{total} values bit-exact, the rest within 1e-6 relative");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The reference itself: layout sizes and a few hand-worked blocks
// ---------------------------------------------------------------------------------------

#[test]
fn block_sizes_match_ggml_and_candle() {
    let want = [18, 20, 22, 24, 34, 84, 110, 144, 176, 210];
    for (fmt, bytes) in ALL.iter().zip(want) {
        assert_eq!(fmt.block_bytes(), bytes, "{fmt:?}");
        assert_eq!(fmt.ggml().type_size(), bytes, "candle's {fmt:?} type size");
        assert_eq!(
            fmt.ggml().block_size(),
            fmt.block_len(),
            "candle's {fmt:?} block size"
        );
    }
    for (kind, fmt) in [
        (QuantKind::Q4_0, Fmt::Q4_0),
        (QuantKind::Q4_1, Fmt::Q4_1),
        (QuantKind::Q8_0, Fmt::Q8_0),
    ] {
        assert_eq!(
            kind.block_bytes(),
            fmt.block_bytes(),
            "kiln's {kind:?} block size"
        );
    }
}

#[test]
fn f16_decoding_is_exact() {
    assert_eq!(f16_to_f32(0x0000), 0.0);
    assert!(f16_to_f32(0x8000) == 0.0 && f16_to_f32(0x8000).is_sign_negative());
    assert_eq!(f16_to_f32(0x3C00), 1.0);
    assert_eq!(f16_to_f32(0xC000), -2.0);
    assert_eq!(f16_to_f32(0x3555), 0.333_251_95); // nearest f16 to 1/3
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24)); // smallest subnormal
    assert_eq!(f16_to_f32(0x03FF), 1023.0 * 2f32.powi(-24)); // largest subnormal
    assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14)); // smallest normal
    assert_eq!(f16_to_f32(0x7BFF), 65504.0); // largest finite
    assert_eq!(f16_to_f32(0x7C00), f32::INFINITY);
    assert!(f16_to_f32(0x7E00).is_nan());
}

/// Asserts that value `i` of the single block `b` is `want`, both in the reference and in
/// candle's dequantization of that block. `want` is worked out by hand in the comments
/// below, straight from the block layout, so it checks the reference (and candle) against
/// the spec rather than against each other. Every value is exact in f32.
fn hand(fmt: Fmt, b: &[u8], i: usize, want: f32) -> TestResult {
    assert_eq!(fmt.value(b, i), want, "reference {fmt:?}, value {i}");
    let got = candle_qtensor(fmt, b, 1, fmt.block_len())?
        .dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert_eq!(got[i], want, "candle {fmt:?}, value {i}");
    Ok(())
}

#[test]
fn hand_worked_blocks() -> TestResult {
    // Q4_0: d = 2.0; qs[0] = 0x1F -> value 0 = (0xF - 8) * 2 = 14, value 16 = (1 - 8) * 2.
    let mut b = vec![0u8; 18];
    put_f16(&mut b, 0, 0x4000);
    b[2] = 0x1F;
    hand(Fmt::Q4_0, &b, 0, 14.0)?;
    hand(Fmt::Q4_0, &b, 16, -14.0)?;
    hand(Fmt::Q4_0, &b, 1, -16.0)?; // nibble 0

    // Q4_1: d = 0.5, m = -1.0; nibble 3 -> 0.5.
    let mut b = vec![0u8; 20];
    put_f16(&mut b, 0, 0x3800);
    put_f16(&mut b, 2, 0xBC00);
    b[4 + 5] = 0x30;
    hand(Fmt::Q4_1, &b, 5, -1.0)?;
    hand(Fmt::Q4_1, &b, 21, 0.5)?;

    // Q5_0: d = 1.0; value 17 has nibble 0x2 (high half of qs[1]) and qh bit 17 set:
    // (0x12 - 16) = 2. Value 1 has qh bit 1 clear and nibble 0: -16.
    let mut b = vec![0u8; 22];
    put_f16(&mut b, 0, 0x3C00);
    b[2..6].copy_from_slice(&(1u32 << 17).to_le_bytes());
    b[6 + 1] = 0x20;
    hand(Fmt::Q5_0, &b, 17, 2.0)?;
    hand(Fmt::Q5_0, &b, 1, -16.0)?;

    // Q5_1: d = 1.0, m = 0.5; value 3 = nibble 0xF with qh bit 3 -> 31 + 0.5.
    let mut b = vec![0u8; 24];
    put_f16(&mut b, 0, 0x3C00);
    put_f16(&mut b, 2, 0x3800);
    b[4..8].copy_from_slice(&(1u32 << 3).to_le_bytes());
    b[8 + 3] = 0x0F;
    hand(Fmt::Q5_1, &b, 3, 31.5)?;
    hand(Fmt::Q5_1, &b, 19, 0.5)?;

    // Q8_0: d = -0.5, qs[7] = -128 -> 64.
    let mut b = vec![0u8; 34];
    put_f16(&mut b, 0, 0xB800);
    b[2 + 7] = 0x80;
    hand(Fmt::Q8_0, &b, 7, 64.0)?;

    // Q2_K: d = 1, dmin = 0.25. Value 128 + 32*2 + 16 + 3 = 211 lives in the second half,
    // plane 2 (bits 4..6) of qs[32 + 19], sub-block 8 + 4 + 1 = 13.
    let mut b = vec![0u8; 84];
    put_f16(&mut b, 80, 0x3C00);
    put_f16(&mut b, 82, 0x3400);
    b[16 + 32 + 19] = 0b0011_0000; // q = 3
    b[13] = 0x45; // scale 5, min 4
    hand(Fmt::Q2K, &b, 211, 5.0 * 3.0 - 0.25 * 4.0)?;

    // Q3_K: d = 1. Value 37 = half 0, plane 1, l = 5, sub-block 2 (scale low nibble in
    // byte 2, top bits in byte 8 + 2 at pair 0). Scale 0x2A - 32 = 10; qs bits 2..4 = 1,
    // hmask bit 1 of byte 5 clear -> q = 1 - 4 = -3.
    let mut b = vec![0u8; 110];
    put_f16(&mut b, 108, 0x3C00);
    b[32 + 5] = 0b0000_0100;
    b[96 + 2] = 0x0A;
    b[96 + 8 + 2] = 0b10;
    hand(Fmt::Q3K, &b, 37, -30.0)?;
    b[5] = 0b10; // high bit set -> q = 1
    hand(Fmt::Q3K, &b, 37, 10.0)?;
    // Value 128 + 37 = 165: half 1, plane 1, l = 5 -> qs[32 + 5] bits 2..4, and the SAME
    // hmask byte 5 (hmask is shared by both halves), bit 4 * 1 + 1 = 5. Sub-block
    // 8 + 2 = 10: low nibble = high nibble of byte 10 - 8 = 2, top bits in byte 8 + 10 % 4
    // = 10 at pair 10 / 4 = 2 (bits 4..6). Scale 0x13 = 19 - 32 = -13; qs bits = 2.
    b[32 + 32 + 5] = 0b0000_1000; // low bits 2
    b[96 + 2] |= 0x30; // sub-block 10's low nibble 3 (sub-block 2's stays 0xA)
    b[96 + 8 + 2] |= 0b01_0000; // sub-block 10's top bits 1 (sub-block 2's stay 0b10)
    hand(Fmt::Q3K, &b, 165, -13.0 * (2.0 - 4.0))?; // hmask bit 5 clear
    hand(Fmt::Q3K, &b, 37, 10.0)?; // unchanged
    b[5] |= 1 << 5;
    hand(Fmt::Q3K, &b, 165, -13.0 * 2.0)?;
    hand(Fmt::Q3K, &b, 37, 10.0)?;

    // Q4_K: d = 1, dmin = 1. Value 64*2 + 32 + 7 = 167 is chunk 2, high nibble of
    // qs[64 + 7], pair 5: scale = (byte 9 & 0xF) | (byte 1 >> 6) << 4, min = (byte 9 >> 4)
    // | (byte 5 >> 6) << 4.
    let mut b = vec![0u8; 144];
    put_f16(&mut b, 0, 0x3C00);
    put_f16(&mut b, 2, 0x3C00);
    b[16 + 64 + 7] = 0x90; // q = 9
    b[4 + 9] = 0x23; // scale low 3, min low 2
    b[4 + 1] = 0b1100_0000; // scale += 48
    b[4 + 5] = 0b0100_0000; // min += 16
    hand(Fmt::Q4K, &b, 167, 51.0 * 9.0 - 18.0)?;

    // Q5_K: same scales; value 167 takes its 5th bit from qh[7] bit 2*2 + 1 = 5.
    let mut b5 = vec![0u8; 176];
    b5[..16].copy_from_slice(&b[..16]);
    b5[48 + 64 + 7] = 0x90;
    b5[16 + 7] = 1 << 5;
    hand(Fmt::Q5K, &b5, 167, 51.0 * 25.0 - 18.0)?;

    // Q6_K: d = 0.5. Value 128 + 96 + 20 = 244: half 1, quarter 3 -> high nibble of
    // ql[64 + 52], qh[32 + 20] bits 6..8, scale 8 + 6 + 1 = 15.
    let mut b = vec![0u8; 210];
    put_f16(&mut b, 208, 0x3800);
    b[64 + 52] = 0x50; // low = 5
    b[128 + 32 + 20] = 0b1000_0000; // high = 2 -> q = 37 - 32 = 5
    b[192 + 15] = (-3i8) as u8;
    hand(Fmt::Q6K, &b, 244, 0.5 * -3.0 * 5.0)?;
    // Value 32 + 3 = 35: half 0, quarter 1 -> low nibble of ql[32 + 3], qh[3] bits 2..4,
    // and scale 2 * 1 + 0 = 2 (each quarter spans two 16-value sub-blocks, so quarter 1
    // starts at scale 2, not 1; scale 1 gets a decoy value).
    b[32 + 3] = 0x0C; // low = 12
    b[128 + 3] = 0b0000_1100; // high = 3 -> q = 12 + 48 - 32 = 28
    b[192 + 2] = 5;
    b[192 + 1] = 7;
    hand(Fmt::Q6K, &b, 35, 0.5 * 5.0 * 28.0)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// candle vs the reference, per type
// ---------------------------------------------------------------------------------------

#[test]
fn candle_q4_0() -> TestResult {
    check_candle(Fmt::Q4_0)
}

#[test]
fn candle_q4_1() -> TestResult {
    check_candle(Fmt::Q4_1)
}

#[test]
fn candle_q5_0() -> TestResult {
    check_candle(Fmt::Q5_0)
}

#[test]
fn candle_q5_1() -> TestResult {
    check_candle(Fmt::Q5_1)
}

#[test]
fn candle_q8_0() -> TestResult {
    check_candle(Fmt::Q8_0)
}

#[test]
fn candle_q2_k() -> TestResult {
    check_candle(Fmt::Q2K)
}

#[test]
fn candle_q3_k() -> TestResult {
    check_candle(Fmt::Q3K)
}

#[test]
fn candle_q4_k() -> TestResult {
    check_candle(Fmt::Q4K)
}

#[test]
fn candle_q5_k() -> TestResult {
    check_candle(Fmt::Q5K)
}

#[test]
fn candle_q6_k() -> TestResult {
    check_candle(Fmt::Q6K)
}

// ---------------------------------------------------------------------------------------
// kiln's own block code vs the reference
// ---------------------------------------------------------------------------------------

fn check_kiln_blocks(kind: QuantKind, fmt: Fmt) {
    let mut exact = 0;
    let mut total = 0;
    for seed in [1u64, 2, 3, 0xDEAD_BEEF] {
        let (_, _, bytes) = sample(fmt, seed);
        let want = fmt.reference(&bytes);
        let mut got = vec![f32::NAN; want.len()];
        for (blk, out) in bytes
            .chunks_exact(kind.block_bytes())
            .zip(got.chunks_exact_mut(QK))
        {
            dequantize_block(kind, blk, out);
        }
        exact += compare(&format!("kiln {kind:?} seed {seed}"), QK, &got, &want);
        total += want.len();
    }
    eprintln!("kiln {kind:?}: {exact}/{total} values bit-exact, the rest within 1e-6 relative");
}

#[test]
fn kiln_blocks_q4_0() {
    check_kiln_blocks(QuantKind::Q4_0, Fmt::Q4_0);
}

#[test]
fn kiln_blocks_q4_1() {
    check_kiln_blocks(QuantKind::Q4_1, Fmt::Q4_1);
}

#[test]
fn kiln_blocks_q8_0() {
    check_kiln_blocks(QuantKind::Q8_0, Fmt::Q8_0);
}

// ---------------------------------------------------------------------------------------
// The GGUF path keeps tensors quantized
// ---------------------------------------------------------------------------------------

/// Writes one tensor per format to a GGUF file, reads it back through kiln's `GgufFile`
/// and `GgufSource`: each must come back in its own ggml type (not dequantized to F32),
/// with the shape it was written with and values equal to the reference.
#[test]
fn gguf_roundtrip_keeps_tensors_quantized() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("quants.gguf");

    // Name tensors as GGUF Llama weights so GgufSource's HF-name mapping finds them too.
    let names: Vec<String> = (0..ALL.len())
        .map(|i| format!("blk.{i}.attn_q.weight"))
        .collect();
    let mut samples = Vec::new();
    let mut tensors = Vec::new();
    for (fmt, name) in ALL.iter().zip(&names) {
        let (rows, cols, bytes) = sample(*fmt, 42);
        tensors.push(candle_qtensor(*fmt, &bytes, rows, cols)?);
        samples.push((*fmt, rows, cols, bytes, name.as_str()));
    }
    {
        let named: Vec<(&str, &QTensor)> = names.iter().map(|n| n.as_str()).zip(&tensors).collect();
        let mut f = std::fs::File::create(&path)?;
        candle_core::quantized::gguf_file::write(&mut f, &[], &named)?;
    }

    let file = Arc::new(GgufFile::open(&path)?);
    let types = file.tensor_types();
    let source = GgufSource::new(file.clone(), &Device::Cpu);
    for (i, (fmt, rows, cols, bytes, name)) in samples.iter().enumerate() {
        let listed = types
            .iter()
            .find(|(n, ..)| n == name)
            .expect("tensor listed");
        assert_eq!(listed.1, fmt.ggml(), "{name}: listed type");
        assert_eq!(listed.2, vec![*rows, *cols], "{name}: listed shape");

        let qt = file.read_tensor(name)?;
        assert_eq!(qt.dtype(), fmt.ggml(), "{name}: read back as another type");
        assert_eq!(qt.shape().dims(), &[*rows, *cols]);
        assert_eq!(
            qt.data()?.as_ref(),
            bytes.as_slice(),
            "{name}: bytes changed"
        );
        let want = fmt.reference(bytes);
        let got = qt
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        compare(&format!("gguf {fmt:?}"), fmt.block_len(), &got, &want);

        let hf = format!("model.layers.{i}.self_attn.q_proj.weight");
        assert!(source.contains(&hf), "{hf} not found via GgufSource");
        match source.get(&hf)? {
            Weight::Quantized(q) => {
                assert_eq!(q.dtype(), fmt.ggml(), "{hf}: GgufSource changed the type");
                assert_eq!(q.shape().dims(), &[*rows, *cols]);
            }
            _ => panic!("{hf}: GgufSource dequantized a {fmt:?} tensor"),
        }
    }
    Ok(())
}

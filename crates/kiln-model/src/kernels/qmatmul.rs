//! y = x Wᵀ for a GGUF-quantized W (n rows of k values), threaded over tiles of weight
//! rows; within a tile, four activation rows share each unpacked weight block.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

use super::blocks::{quantize_row, ActBlock, QuantKind, QK};
use super::dot::dot_tile;
use super::dot8::{dot_row_x8, ActLanes8};

/// Weight rows per unit of parallel work: small enough to balance two to many threads on
/// decode, large enough that a tile stays in L1 while activations stream past it.
const TILE_ROWS: usize = 16;

#[derive(Debug, Clone)]
pub struct QuantMatrix {
    kind: QuantKind,
    n: usize,
    k: usize,
    data: Vec<u8>,
}

impl QuantMatrix {
    /// `data` holds n rows of k/32 blocks each, as stored in GGUF.
    pub fn new(kind: QuantKind, n: usize, k: usize, data: Vec<u8>) -> Option<Self> {
        (k.is_multiple_of(QK) && data.len() == n * (k / QK) * kind.block_bytes()).then_some(Self {
            kind,
            n,
            k,
            data,
        })
    }

    pub fn kind(&self) -> QuantKind {
        self.kind
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn row(&self, i: usize) -> &[u8] {
        let rb = self.k / QK * self.kind.block_bytes();
        &self.data[i * rb..(i + 1) * rb]
    }

    /// The weights as n rows of k floats (a frozen layer's backward multiplies by them).
    pub fn dequantize(&self) -> Vec<f32> {
        let bb = self.kind.block_bytes();
        let mut out = vec![0f32; self.n * self.k];
        for (block, dst) in self.data.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
            super::blocks::dequantize_block(self.kind, block, dst);
        }
        out
    }

    /// `x` is m rows of k floats; returns m rows of n floats.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        Self::matmul_many(&[self], x, m).pop().unwrap_or_default()
    }

    /// The products of one input with several matrices of the same width (q/k/v, gate/up):
    /// the activations are quantized once and all rows share one parallel dispatch. Each
    /// output is exactly what [`QuantMatrix::matmul`] gives.
    pub fn matmul_many(mats: &[&QuantMatrix], x: &[f32], m: usize) -> Vec<Vec<f32>> {
        let Some(first) = mats.first() else {
            return vec![];
        };
        let k = first.k;
        assert!(mats.iter().all(|w| w.k == k), "matmul_many: widths differ");
        assert_eq!(x.len(), m * k, "matmul_many: input is not m x k");
        let nb = k / QK;
        let mut acts = vec![ActBlock::default(); m * nb];
        for (row, a) in x.chunks_exact(k).zip(acts.chunks_exact_mut(nb)) {
            quantize_row(row, a);
        }
        let lanes8: Vec<ActLanes8> = (0..m / 8)
            .map(|g| ActLanes8::new(std::array::from_fn(|r| &acts[(g * 8 + r) * nb..][..nb])))
            .collect();
        let mut outs: Vec<Vec<f32>> = mats.iter().map(|w| vec![0f32; m * w.n]).collect();
        let out_ptrs: Vec<usize> = outs.iter_mut().map(|o| o.as_mut_ptr() as usize).collect();
        // Tile t of the concatenated rows belongs to matrix i when starts[i] <= t < starts[i+1].
        let mut starts = vec![0usize];
        for w in mats {
            starts.push(starts[starts.len() - 1] + w.n.div_ceil(TILE_ROWS));
        }
        let (acts, lanes8) = (&acts, &lanes8);
        let work = |range: std::ops::Range<usize>| {
            for tile in range {
                let i = starts.partition_point(|&s| s <= tile) - 1;
                // SAFETY: each (row, column) of each output is written by exactly one tile.
                unsafe { mats[i].tile(tile - starts[i], acts, lanes8, m, out_ptrs[i] as *mut f32) };
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(starts[mats.len()], work);
        outs
    }

    /// One tile of weight rows against all m activation rows, into `out` (m x n).
    ///
    /// # Safety
    /// `out` points to m * n floats that no other thread writes in this tile's columns.
    unsafe fn tile(
        &self,
        tile: usize,
        acts: &[ActBlock],
        lanes8: &[ActLanes8],
        m: usize,
        out: *mut f32,
    ) {
        let (n, nb) = (self.n, self.k / QK);
        let put = |r: usize, j: usize, v: f32| {
            // SAFETY: (r, j) lies in this tile's columns; see the function's contract.
            unsafe { *out.add(r * n + j) = v };
        };
        let rows = tile * TILE_ROWS..n.min((tile + 1) * TILE_ROWS);
        let a = |r: usize| &acts[r * nb..(r + 1) * nb];
        // Eight sequences decoding, and prefill: 1 weight row x 8 activation rows per step.
        for (g, lanes) in lanes8.iter().enumerate() {
            let r0 = g * 8;
            let rows8: [&[ActBlock]; 8] = std::array::from_fn(|r| a(r0 + r));
            for j in rows.clone() {
                let y = dot_row_x8(self.kind, self.row(j), rows8, lanes);
                for (r, v) in y.iter().enumerate() {
                    put(r0 + r, j, *v);
                }
            }
        }
        let mut r0 = lanes8.len() * 8;
        // Leftovers of four or more: 2 weight rows x 4 activation rows per step.
        while r0 + 4 <= m {
            let mut j = rows.start;
            while j + 2 <= rows.end {
                let y = dot_tile::<2, 4>(
                    self.kind,
                    [self.row(j), self.row(j + 1)],
                    [a(r0), a(r0 + 1), a(r0 + 2), a(r0 + 3)],
                );
                for (c, yc) in y.iter().enumerate() {
                    for (r, v) in yc.iter().enumerate() {
                        put(r0 + r, j + c, *v);
                    }
                }
                j += 2;
            }
            for j in j..rows.end {
                let [y] = dot_tile::<1, 4>(
                    self.kind,
                    [self.row(j)],
                    [a(r0), a(r0 + 1), a(r0 + 2), a(r0 + 3)],
                );
                for (r, v) in y.iter().enumerate() {
                    put(r0 + r, j, *v);
                }
            }
            r0 += 4;
        }
        // Decode and leftovers: 4 weight rows x 1 activation row per step.
        for r in r0..m {
            let mut j = rows.start;
            while j + 4 <= rows.end {
                let y = dot_tile::<4, 1>(
                    self.kind,
                    [
                        self.row(j),
                        self.row(j + 1),
                        self.row(j + 2),
                        self.row(j + 3),
                    ],
                    [a(r)],
                );
                for (c, yc) in y.iter().enumerate() {
                    put(r, j + c, yc[0]);
                }
                j += 4;
            }
            for j in j..rows.end {
                put(
                    r,
                    j,
                    dot_tile::<1, 1>(self.kind, [self.row(j)], [a(r)])[0][0],
                );
            }
        }
    }
}

/// [`QuantMatrix::matmul`] as a candle op on (..., k) f32 tensors.
pub struct QuantMatmulOp<'a>(pub &'a QuantMatrix);

impl CustomOp1 for QuantMatmulOp<'_> {
    fn name(&self) -> &'static str {
        "kiln-quant-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s else {
            candle_core::bail!("kiln-quant-matmul: expected f32 input, got {:?}", s.dtype())
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("kiln-quant-matmul: input must be contiguous")
        };
        let dims = l.shape().dims();
        let k = *dims.last().unwrap_or(&0);
        if k != self.0.k {
            candle_core::bail!(
                "kiln-quant-matmul: input has {k} features, weight expects {}",
                self.0.k
            )
        }
        let m = (b - a) / k.max(1);
        let y = self.0.matmul(&x[a..b], m);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.0.n;
        }
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks::dequantize_block;
    use super::*;

    #[test]
    fn matmul_matches_dequantized_reference_for_odd_shapes() {
        let (n, k) = (37, 64);
        let kind = QuantKind::Q8_0;
        let mut data = Vec::new();
        for i in 0..n * k / QK {
            data.extend_from_slice(&half::f16::from_f32(0.01 + i as f32 * 1e-4).to_le_bytes());
            data.extend((0..32).map(|j| ((i * 13 + j * 7) % 255) as u8));
        }
        let w = QuantMatrix::new(kind, n, k, data).unwrap();
        for m in [1, 3, 4, 9] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 4.0).collect();
            let y = w.matmul(&x, m);
            // The kernel multiplies int8-quantized activations; compare against exactly those.
            let mut acts = vec![ActBlock::default(); m * k / QK];
            for (row, a) in x.chunks(k).zip(acts.chunks_mut(k / QK)) {
                quantize_row(row, a);
            }
            let xq: Vec<f32> = acts
                .iter()
                .flat_map(|a| a.qs.iter().map(move |&q| q as f32 * a.d))
                .collect();
            for r in 0..m {
                for j in 0..n {
                    let mut wf = vec![0f32; k];
                    for (bi, b) in w.row(j).chunks(kind.block_bytes()).enumerate() {
                        dequantize_block(kind, b, &mut wf[bi * QK..(bi + 1) * QK]);
                    }
                    let want: f32 = wf
                        .iter()
                        .zip(&xq[r * k..(r + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum();
                    let got = y[r * n + j];
                    assert!(
                        (got - want).abs() < 1e-3 * want.abs().max(1.0),
                        "m={m} r={r} j={j}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matmul_many_equals_separate_products_bit_for_bit() {
        let k = 96;
        let mk = |n: usize, seed: usize| {
            let data: Vec<u8> = (0..n * k / QK)
                .flat_map(|i| {
                    let mut b = half::f16::from_f32(0.02 + (i % 7) as f32 * 1e-3)
                        .to_le_bytes()
                        .to_vec();
                    b.extend(half::f16::from_f32(-0.1).to_le_bytes());
                    b.extend((0..16).map(move |j| ((i * 31 + j * 17 + seed) % 256) as u8));
                    b
                })
                .collect();
            QuantMatrix::new(QuantKind::Q4_1, n, k, data).unwrap()
        };
        let (a, b, c) = (mk(40, 1), mk(8, 2), mk(21, 3));
        for m in [1, 5, 13] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 5.0)
                .collect();
            let many = QuantMatrix::matmul_many(&[&a, &b, &c], &x, m);
            assert_eq!(
                many,
                vec![a.matmul(&x, m), b.matmul(&x, m), c.matmul(&x, m)]
            );
            // Every tile shape (8, 4 and 1 activation rows) gives a row the same bits.
            let rows: Vec<f32> = x.chunks(k).flat_map(|row| a.matmul(row, 1)).collect();
            assert_eq!(many[0], rows, "m={m}");
        }
    }
}

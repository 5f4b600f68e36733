//! Dense vectors and exact search. `VectorStore` is the seam for other backends (an ANN
//! index, an external vector database); `FlatVectors`, kiln's default, keeps unit vectors
//! row after row and scores every one (a dot product in 16 lanes the compiler vectorises),
//! which is exact and, at tens of thousands of chunks, well under a millisecond a query.

use std::io::Read;
use std::path::Path;

use crate::error::{io_err, RagError, Result};

/// Nearest rows to a query, among the rows `keep` accepts.
pub trait VectorStore {
    fn dim(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (row, score) of the `k` best rows, best first (score = dot product).
    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)>;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlatVectors {
    dim: usize,
    data: Vec<f32>,
}

impl FlatVectors {
    pub fn new(dim: usize) -> Self {
        Self { dim, data: vec![] }
    }

    pub fn push(&mut self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(RagError::Other(format!(
                "a vector of {} values in a store of width {}",
                v.len(),
                self.dim
            )));
        }
        self.data.extend_from_slice(v);
        Ok(())
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Little-endian f32s, rows in order.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(kiln_model::atomic::write_atomic(path, |w| {
            for x in &self.data {
                w.write_all(&x.to_le_bytes())?;
            }
            Ok(())
        })?)
    }

    /// Reads `rows` rows of width `dim`; a file of another size is corrupt.
    pub fn read(path: &Path, dim: usize, rows: usize) -> Result<Self> {
        let mut bytes = vec![];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(path))?;
        if bytes.len() != dim * rows * 4 {
            return Err(RagError::Index {
                dir: path.to_path_buf(),
                message: format!(
                    "vector file holds {} bytes, expected {rows} rows x {dim} x 4 = {}",
                    bytes.len(),
                    dim * rows * 4
                ),
            });
        }
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self { dim, data })
    }
}

/// Dot product, 16 independent partial sums (vectorised; the order differs from a plain
/// loop only in the last bits).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl VectorStore for FlatVectors {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)> {
        if query.len() != self.dim || k == 0 {
            return vec![];
        }
        // A bounded min-heap would save little at this size; a partial sort is simpler.
        let mut scored: Vec<(usize, f32)> = (0..self.len())
            .filter(|&i| keep(i))
            .map(|i| (i, dot(self.row(i), query)))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return vec![];
        }
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        scored.select_nth_unstable_by(k - 1, by_score);
        scored.truncate(k);
        scored.sort_by(by_score);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    #[test]
    fn dot_matches_a_plain_loop_at_every_length() {
        let mut s = 7;
        for n in [0, 1, 15, 16, 17, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-5, "n={n}");
        }
    }

    #[test]
    fn search_returns_the_naive_top_k_and_honours_the_filter() {
        let mut s = 11;
        let dim = 24;
        let mut v = FlatVectors::new(dim);
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|_| (0..dim).map(|_| lcg(&mut s)).collect())
            .collect();
        for r in &rows {
            v.push(r).unwrap();
        }
        let q: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
        let mut naive: Vec<(usize, f32)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        naive.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = v.search(&q, 10, &|_| true);
        assert_eq!(
            got.iter().map(|x| x.0).collect::<Vec<_>>(),
            naive[..10].iter().map(|x| x.0).collect::<Vec<_>>()
        );
        let even = v.search(&q, 5, &|i| i % 2 == 0);
        assert!(even.iter().all(|(i, _)| i % 2 == 0) && even.len() == 5);
        assert!(v.search(&q, 10, &|_| false).is_empty());
    }

    #[test]
    fn a_truncated_vector_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.f32");
        let mut v = FlatVectors::new(4);
        v.push(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        v.write(&p).unwrap();
        assert_eq!(FlatVectors::read(&p, 4, 1).unwrap(), v);
        let e = FlatVectors::read(&p, 4, 2).unwrap_err().to_string();
        assert!(e.contains("expected 2 rows"), "{e}");
    }
}

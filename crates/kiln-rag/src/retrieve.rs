//! Retrieval over an index: BM25, dense (the query embedded by the index's embedder, exact
//! search), or both fused, by reciprocal rank (Cormack et al. 2009, k = 60: each list adds
//! 1 / (60 + rank)) or by weighted scores (each list min-max scaled to [0, 1], then
//! `alpha * dense + (1 - alpha) * bm25`), or by a convex combination of scores scaled from
//! their theoretical minimum (Bruch et al. 2023, "TM2C2": cosine from -1, BM25 from 0, each
//! up to the query's best), which unlike min-max does not stretch a list whose scores are
//! all close to its best. Filters (`key=value` on document metadata) apply
//! inside each search, not after it, so k results come back whenever k chunks match.

use std::collections::HashMap;
use std::str::FromStr;

use crate::embed::Embedder;
use crate::error::{RagError, Result};
use crate::hnsw::Hnsw;
use crate::index::RagIndex;
use crate::indexer::{check_embedder, embedder_id};
use crate::vectors::VectorStore;

/// Reciprocal-rank-fusion constant.
pub const RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Bm25,
    Dense,
    /// Reciprocal rank fusion of BM25 and dense.
    Hybrid,
    /// Weighted fusion of min-max scaled scores; `alpha` weighs dense.
    Weighted {
        alpha: f32,
    },
    /// Convex combination of scores scaled from their theoretical minimum; `alpha` weighs
    /// dense.
    Convex {
        alpha: f32,
    },
}

/// The default `alpha` of [`Mode::Convex`].
pub const CONVEX_ALPHA: f32 = 0.8;

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bm25" => Ok(Mode::Bm25),
            "dense" => Ok(Mode::Dense),
            "hybrid" | "rrf" => Ok(Mode::Hybrid),
            "weighted" => Ok(Mode::Weighted { alpha: 0.5 }),
            "convex" => Ok(Mode::Convex {
                alpha: CONVEX_ALPHA,
            }),
            _ => {
                let alpha = |prefix: &str| match s.strip_prefix(prefix).map(str::parse::<f32>) {
                    Some(Ok(a)) if (0.0..=1.0).contains(&a) => Some(a),
                    _ => None,
                };
                if let Some(alpha) = alpha("weighted:") {
                    Ok(Mode::Weighted { alpha })
                } else if let Some(alpha) = alpha("convex:") {
                    Ok(Mode::Convex { alpha })
                } else {
                    Err(format!(
                        "unknown mode '{s}'; expected bm25, dense, hybrid, weighted[:ALPHA] or \
                         convex[:ALPHA] (ALPHA in 0..1)"
                    ))
                }
            }
        }
    }
}

/// A chunk row of the index and its score under the mode that found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

pub struct Retriever<'a> {
    pub index: &'a RagIndex,
    pub embedder: &'a Embedder,
    /// Dense search through this HNSW graph of the index's vectors instead of exactly.
    pub ann: Option<&'a Hnsw>,
}

impl<'a> Retriever<'a> {
    /// Refuses an embedder other than the index's.
    pub fn new(index: &'a RagIndex, embedder: &'a Embedder) -> Result<Self> {
        check_embedder(&index.dir, &index.manifest, &embedder_id(embedder))?;
        Ok(Self {
            index,
            embedder,
            ann: None,
        })
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        self.embedder
            .embed(&[query], 1)?
            .pop()
            .ok_or_else(|| RagError::Other("the embedder returned nothing".into()))
    }

    pub fn bm25(&self, query: &str, k: usize, filters: &[String]) -> Result<Vec<Hit>> {
        Ok(self
            .index
            .bm25
            .search(query, k, filters)?
            .into_iter()
            .map(|(row, score)| Hit { row, score })
            .collect())
    }

    pub fn dense(&self, vector: &[f32], k: usize, filters: &[String]) -> Vec<Hit> {
        let keep = |row: usize| filters.is_empty() || self.index.matches(row, filters);
        let store: &dyn VectorStore = match self.ann {
            Some(h) => h,
            None => &self.index.vectors,
        };
        store
            .search(vector, k, &keep)
            .into_iter()
            .map(|(row, score)| Hit { row, score })
            .collect()
    }

    /// The best `k` chunks for `query`.
    pub fn search(
        &self,
        query: &str,
        mode: Mode,
        k: usize,
        filters: &[String],
    ) -> Result<Vec<Hit>> {
        let vector = if mode == Mode::Bm25 {
            vec![]
        } else {
            self.embed_query(query)?
        };
        self.search_with_vector(query, &vector, mode, k, filters)
    }

    /// The best `k` chunks, BM25 matching `query` and dense search `vector` (the query's
    /// embedding, or another, as HyDE's).
    pub fn search_with_vector(
        &self,
        query: &str,
        vector: &[f32],
        mode: Mode,
        k: usize,
        filters: &[String],
    ) -> Result<Vec<Hit>> {
        // Fusion looks deeper than k into each list, so a chunk ranked modestly by both can
        // rise above one ranked high by a single list.
        let depth = (4 * k).max(50);
        Ok(match mode {
            Mode::Bm25 => self.bm25(query, k, filters)?,
            Mode::Dense => self.dense(vector, k, filters),
            Mode::Hybrid => {
                let lists = [
                    self.bm25(query, depth, filters)?,
                    self.dense(vector, depth, filters),
                ];
                rrf(&lists, k)
            }
            Mode::Weighted { alpha } => {
                let b = self.bm25(query, depth, filters)?;
                let d = self.dense(vector, depth, filters);
                weighted(&b, &d, alpha, k)
            }
            Mode::Convex { alpha } => {
                let b = self.bm25(query, depth, filters)?;
                let d = self.dense(vector, depth, filters);
                convex(&b, &d, alpha, k)
            }
        })
    }
}

/// Reciprocal rank fusion of ranked lists (ranks from 1), best `k`; ties keep the order
/// of first appearance.
pub fn rrf(lists: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    let mut score: HashMap<usize, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for list in lists {
        for (rank, h) in list.iter().enumerate() {
            let e = score.entry(h.row).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    top(score, k)
}

/// Weighted fusion of min-max scaled scores: `alpha * dense + (1 - alpha) * bm25` (a chunk
/// missing from a list scores 0 there).
pub fn weighted(bm25: &[Hit], dense: &[Hit], alpha: f32, k: usize) -> Vec<Hit> {
    fused(bm25, dense, alpha, k, [None, None])
}

/// Convex fusion of scores scaled from their theoretical minimum (cosine -1, BM25 0) to the
/// query's best: `alpha * dense + (1 - alpha) * bm25` (a chunk missing from a list scores
/// 0 there).
pub fn convex(bm25: &[Hit], dense: &[Hit], alpha: f32, k: usize) -> Vec<Hit> {
    fused(bm25, dense, alpha, k, [Some(-1.0), Some(0.0)])
}

/// `alpha * dense + (1 - alpha) * bm25` of each list's scores scaled to [0, 1] from `lows`
/// (dense, bm25; None: the list's own lowest) to the list's highest.
fn fused(bm25: &[Hit], dense: &[Hit], alpha: f32, k: usize, lows: [Option<f32>; 2]) -> Vec<Hit> {
    let mut score: HashMap<usize, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for ((list, w), low) in [(dense, alpha), (bm25, 1.0 - alpha)].into_iter().zip(lows) {
        let (lo, hi) = list
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
                (lo.min(h.score), hi.max(h.score))
            });
        let lo = low.unwrap_or(lo);
        for h in list {
            let scaled = if hi > lo {
                (h.score - lo) / (hi - lo)
            } else {
                1.0
            };
            let e = score.entry(h.row).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += w * scaled;
        }
    }
    top(score, k)
}

fn top(score: HashMap<usize, (f32, usize)>, k: usize) -> Vec<Hit> {
    let mut v: Vec<(usize, f32, usize)> = score.into_iter().map(|(r, (s, o))| (r, s, o)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    v.into_iter()
        .take(k)
        .map(|(row, score, _)| Hit { row, score })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(rows: &[usize]) -> Vec<Hit> {
        rows.iter()
            .enumerate()
            .map(|(i, &row)| Hit {
                row,
                score: 10.0 - i as f32,
            })
            .collect()
    }

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        // Row 2, second in both lists: 1/62 + 1/62 beats rows 1 and 3, first in one (1/61).
        let fused = rrf(&[hits(&[1, 2]), hits(&[3, 2])], 3);
        assert_eq!(fused.iter().map(|h| h.row).collect::<Vec<_>>(), [2, 1, 3]);
        let want = 2.0 / 62.0;
        assert!((fused[0].score - want).abs() < 1e-7);
    }

    #[test]
    fn weighted_fusion_scales_each_list() {
        let b = vec![
            Hit {
                row: 1,
                score: 20.0,
            },
            Hit {
                row: 2,
                score: 10.0,
            },
        ];
        let d = vec![Hit { row: 2, score: 0.9 }, Hit { row: 3, score: 0.1 }];
        // alpha 0.5: row 2 = 0.5 * 1 + 0.5 * 0 = 0.5; row 1 = 0.5; row 3 = 0.
        let f = weighted(&b, &d, 0.5, 3);
        assert_eq!(f.iter().map(|h| h.row).collect::<Vec<_>>(), [2, 1, 3]);
        let dense_only = weighted(&b, &d, 1.0, 1);
        assert_eq!(dense_only[0].row, 2);
    }

    /// Scaled from the theoretical minimum, a list whose scores all sit near its best keeps
    /// them near 1; min-max would spread them over [0, 1].
    #[test]
    fn convex_fusion_scales_from_the_theoretical_minimum() {
        let b = vec![
            Hit {
                row: 1,
                score: 10.0,
            },
            Hit { row: 2, score: 5.0 },
        ];
        let d = vec![Hit { row: 2, score: 0.8 }, Hit { row: 1, score: 0.7 }];
        // Row 1: 0.5 * 1.7/1.8 + 0.5 * 1 = 0.972; row 2: 0.5 * 1 + 0.5 * 0.5 = 0.75.
        let f = convex(&b, &d, 0.5, 2);
        assert_eq!(f.iter().map(|h| h.row).collect::<Vec<_>>(), [1, 2]);
        assert!((f[0].score - (0.5 * 1.7 / 1.8 + 0.5)).abs() < 1e-6);
        // Min-max gives row 1 only bm25's half: 0.5 vs row 2's 0.5 + 0 → a tie, kept in order.
        let w = weighted(&b, &d, 0.5, 2);
        assert!((w[0].score - 0.5).abs() < 1e-6 && (w[1].score - 0.5).abs() < 1e-6);
        assert_eq!(
            "convex:0.7".parse::<Mode>(),
            Ok(Mode::Convex { alpha: 0.7 })
        );
        assert_eq!(
            "convex".parse::<Mode>(),
            Ok(Mode::Convex {
                alpha: CONVEX_ALPHA
            })
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!("hybrid".parse::<Mode>(), Ok(Mode::Hybrid));
        assert_eq!(
            "weighted:0.3".parse::<Mode>(),
            Ok(Mode::Weighted { alpha: 0.3 })
        );
        assert!("weighted:2".parse::<Mode>().is_err());
        assert!("bm42"
            .parse::<Mode>()
            .unwrap_err()
            .contains("expected bm25"));
    }
}

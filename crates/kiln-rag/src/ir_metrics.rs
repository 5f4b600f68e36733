//! Ranking metrics of one query against its relevant documents, on the ranked list of
//! distinct documents (a document's best chunk stands for it):
//!
//! - recall@k: relevant documents in the top k / relevant documents;
//! - precision@k: relevant documents in the top k / k;
//! - MRR@10: 1 / rank of the first relevant document within 10 (else 0);
//! - nDCG@10: binary gains, DCG = sum of 1 / log2(rank + 1) over relevant ranks <= 10,
//!   divided by the DCG of the ideal ranking.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct QueryMetrics {
    pub recall: f64,
    pub precision: f64,
    pub mrr10: f64,
    pub ndcg10: f64,
}

/// Metrics of `ranked` (document ids, best first, may repeat) at cut-off `k`.
pub fn query_metrics(ranked: &[String], relevant: &HashSet<String>, k: usize) -> QueryMetrics {
    let mut seen = HashSet::new();
    let docs: Vec<&String> = ranked.iter().filter(|d| seen.insert(*d)).collect();
    let hit = |d: &String| relevant.contains(d);
    let in_k = docs.iter().take(k).filter(|d| hit(d)).count() as f64;
    let mrr10 = docs
        .iter()
        .take(10)
        .position(|d| hit(d))
        .map_or(0.0, |p| 1.0 / (p + 1) as f64);
    let dcg: f64 = docs
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, d)| hit(d))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    QueryMetrics {
        recall: if relevant.is_empty() {
            0.0
        } else {
            in_k / relevant.len() as f64
        },
        precision: in_k / k.max(1) as f64,
        mrr10,
        ndcg10: if ideal > 0.0 { dcg / ideal } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_values() {
        let rel: HashSet<String> = ids(&["b", "d"]).into_iter().collect();
        // Distinct documents: a, b, c, d (the second "a" is the same document).
        let m = query_metrics(&ids(&["a", "a", "b", "c", "d"]), &rel, 3);
        assert_eq!(m.recall, 0.5);
        assert!((m.precision - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.mrr10, 0.5);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg10 - dcg / ideal).abs() < 1e-12);
        let perfect = query_metrics(&ids(&["d", "b"]), &rel, 10);
        assert_eq!(
            (perfect.recall, perfect.mrr10, perfect.ndcg10),
            (1.0, 1.0, 1.0)
        );
        let miss = query_metrics(&ids(&["x"]), &rel, 10);
        assert_eq!((miss.recall, miss.mrr10, miss.ndcg10), (0.0, 0.0, 0.0));
    }
}

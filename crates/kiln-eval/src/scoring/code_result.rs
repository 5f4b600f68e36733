//! A programming problem's outcome: n completions run against its tests, and the
//! unbiased pass@k estimate of the Codex paper (Chen et al., 2021):
//! pass@k = 1 - C(n-c, k) / C(n, k) for c passing completions out of n.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scoring::sandbox::Verdict;

/// pass@k from `c` passing completions out of `n` (k <= n), computed as the product
/// 1 - prod_{i=n-c+1}^{n} (1 - k/i), which stays exact where the binomials overflow.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n && c <= n, "pass@{k} of {c}/{n}");
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// The k of pass@k reported for n completions per problem.
pub const PASS_AT: [(usize, &str); 3] = [(1, "pass@1"), (10, "pass@10"), (100, "pass@100")];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub completions: Vec<String>,
    pub verdicts: Vec<Verdict>,
    /// The end of the first failing completion's stderr (why it failed).
    pub first_error: Option<String>,
    /// pass@k of this problem (`"pass@1": ...`), as `kiln eval compare` pairs them.
    #[serde(flatten)]
    pub pass_at: BTreeMap<String, f64>,
}

impl CodeResult {
    pub fn new(
        doc_id: usize,
        native_id: serde_json::Value,
        completions: Vec<String>,
        verdicts: Vec<Verdict>,
        first_error: Option<String>,
    ) -> Self {
        let n = verdicts.len();
        let c = verdicts.iter().filter(|v| v.passed()).count();
        let pass_at = PASS_AT
            .iter()
            .filter(|(k, _)| *k <= n)
            .map(|&(k, name)| (name.to_string(), pass_at_k(n, c, k)))
            .collect();
        Self {
            doc_id,
            native_id,
            completions,
            verdicts,
            first_error,
            pass_at,
        }
    }

    pub fn passed(&self) -> usize {
        self.verdicts.iter().filter(|v| v.passed()).count()
    }

    /// pass@k for every k in [`PASS_AT`] up to the number of completions.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        PASS_AT
            .iter()
            .filter_map(|&(_, name)| Some((name, *self.pass_at.get(name)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pass@k by its definition: the fraction of the k-subsets of n completions that hold
    /// at least one passing completion, counted by enumerating the subsets.
    fn by_enumeration(n: usize, c: usize, k: usize) -> f64 {
        let (mut hit, mut all) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k {
                continue;
            }
            all += 1;
            // Completions 0..c pass.
            if (0..c).any(|i| mask & (1 << i) != 0) {
                hit += 1;
            }
        }
        hit as f64 / all as f64
    }

    #[test]
    fn the_estimator_equals_the_subset_count() {
        for n in 1..=10 {
            for c in 0..=n {
                for k in 1..=n {
                    let (a, b) = (pass_at_k(n, c, k), by_enumeration(n, c, k));
                    assert!((a - b).abs() < 1e-12, "n={n} c={c} k={k}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn pass_at_one_is_the_pass_rate() {
        assert!((pass_at_k(200, 37, 1) - 37.0 / 200.0).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 0, 3), 0.0);
        assert_eq!(pass_at_k(5, 3, 3), 1.0);
    }
}

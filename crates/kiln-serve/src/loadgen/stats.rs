//! Percentiles of latency samples, by linear interpolation between closest ranks (numpy's
//! default, and what vLLM's `benchmark_serving.py` reports), so numbers line up with theirs.

use serde::Serialize;

/// p50/p95/p99 and the mean of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    /// `None` for no samples: a level where every request failed has no latency, not zero.
    pub fn of(samples: &[f64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Percentiles {
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
        })
    }
}

/// The `p`th percentile (0..=100) of ascending `sorted`, which must be non-empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: for each p, the value v with exactly the fraction of samples below it that
    /// linear interpolation implies, computed by walking the sorted list.
    fn naive(samples: &[f64], p: f64) -> f64 {
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pos = p / 100.0 * (v.len() - 1) as f64;
        let mut i = 0;
        while (i + 1) as f64 <= pos {
            i += 1;
        }
        if i + 1 == v.len() {
            return v[i];
        }
        v[i] + (v[i + 1] - v[i]) * (pos - i as f64)
    }

    #[test]
    fn matches_naive_sort() {
        let mut x = 12345u64;
        for n in [1usize, 2, 3, 7, 10, 100, 101, 999] {
            let samples: Vec<f64> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 33) as f64 / 1e6
                })
                .collect();
            let p = Percentiles::of(&samples).unwrap();
            for (got, q) in [(p.p50, 50.0), (p.p95, 95.0), (p.p99, 99.0)] {
                let want = naive(&samples, q);
                assert!((got - want).abs() < 1e-9, "n={n} p{q}: {got} vs {want}");
            }
            let mean = samples.iter().sum::<f64>() / n as f64;
            assert!((p.mean - mean).abs() < 1e-9);
        }
    }

    #[test]
    fn known_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v).unwrap();
        assert!((p.p50 - 50.5).abs() < 1e-12);
        assert!((p.p95 - 95.05).abs() < 1e-9);
        assert!((p.p99 - 99.01).abs() < 1e-9);
        assert_eq!(Percentiles::of(&[4.0]).unwrap().p99, 4.0);
        assert_eq!(Percentiles::of(&[]), None);
    }
}

//! The uncertainty of a measurement over items (questions, queries, prompts): the mean with
//! its standard error and a seeded 95% percentile-bootstrap interval, the paired difference
//! of two systems on the same items, and Wilson's interval for a proportion. Seeded, so a
//! report reproduces; shared by kiln-eval and kiln-rag, which must not depend on each other.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A mean over items with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / √n, as lm-evaluation-harness
    /// reports it).
    pub stderr: f64,
    /// 95% percentile bootstrap interval.
    pub ci: [f64; 2],
}

/// Resamples of a bootstrap unless a caller asks for another count.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Mean, standard error and a seeded 95% bootstrap interval of `xs`
/// ([`BOOTSTRAP_RESAMPLES`] resamples).
pub fn summarize(xs: &[f64], seed: u64) -> Summary {
    summarize_with(xs, BOOTSTRAP_RESAMPLES, seed)
}

/// [`summarize`] with `resamples` bootstrap resamples.
pub fn summarize_with(xs: &[f64], resamples: usize, seed: u64) -> Summary {
    let n = xs.len();
    if n == 0 {
        return Summary {
            mean: f64::NAN,
            stderr: f64::NAN,
            ci: [f64::NAN; 2],
        };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let means = bootstrap_with(n, resamples, seed, |idx| {
        idx.map(|i| xs[i]).sum::<f64>() / n as f64
    });
    Summary {
        mean,
        stderr: (var / n as f64).sqrt(),
        ci: percentile_interval(&means),
    }
}

/// `stat` of [`BOOTSTRAP_RESAMPLES`] seeded resamples (with replacement) of the indices
/// 0..n, sorted.
pub fn bootstrap(
    n: usize,
    seed: u64,
    stat: impl Fn(&mut dyn Iterator<Item = usize>) -> f64,
) -> Vec<f64> {
    bootstrap_with(n, BOOTSTRAP_RESAMPLES, seed, stat)
}

/// [`bootstrap`] with `resamples` resamples.
pub fn bootstrap_with(
    n: usize,
    resamples: usize,
    seed: u64,
    stat: impl Fn(&mut dyn Iterator<Item = usize>) -> f64,
) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out: Vec<f64> = (0..resamples)
        .map(|_| stat(&mut (0..n).map(|_| rng.random_range(0..n))))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// The 95% percentile interval of sorted bootstrap statistics.
pub fn percentile_interval(sorted: &[f64]) -> [f64; 2] {
    if sorted.is_empty() {
        return [f64::NAN; 2];
    }
    let at =
        |q: f64| sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)];
    [at(0.025), at(0.975)]
}

/// Paired bootstrap of the mean difference `b - a` over the same items: the mean and its
/// 95% interval. A difference whose interval excludes 0 is significant at 5%.
pub fn paired_difference(a: &[f64], b: &[f64], seed: u64) -> Summary {
    paired_difference_with(a, b, BOOTSTRAP_RESAMPLES, seed)
}

/// [`paired_difference`] with `resamples` bootstrap resamples.
pub fn paired_difference_with(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Summary {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    summarize_with(&d, resamples, seed)
}

/// Wilson's 95% score interval for `k` successes in `n` trials.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n_f) = (1.96f64, n as f64);
    let p = k as f64 / n_f;
    let denom = 1.0 + z * z / n_f;
    let centre = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_the_binomial_standard_error_and_brackets_the_mean() {
        let xs: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        let s = summarize(&xs, 7);
        assert!((s.mean - 0.25).abs() < 1e-12);
        let se = (0.25f64 * 0.75 / 399.0).sqrt();
        assert!((s.stderr - se).abs() < 1e-12, "{} vs {se}", s.stderr);
        // A percentile interval of a mean is about ±1.96 standard errors.
        assert!(s.ci[0] < 0.25 && s.ci[1] > 0.25);
        assert!(
            ((s.ci[1] - s.ci[0]) / (2.0 * 1.96 * se) - 1.0).abs() < 0.2,
            "{:?}",
            s.ci
        );
        assert_eq!(summarize(&xs, 7), s, "seeded");
    }

    #[test]
    fn paired_difference_sees_a_consistent_gain() {
        let a: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        let mut b = a.clone();
        for x in b.iter_mut().step_by(10) {
            *x = 1.0; // already 1: no change
        }
        for i in (1..200).step_by(4) {
            b[i] = 1.0; // 50 wrong answers made right
        }
        let d = paired_difference(&a, &b, 1);
        assert!((d.mean - 0.25).abs() < 1e-12);
        assert!(d.ci[0] > 0.15, "{:?}", d.ci);
    }

    #[test]
    fn paired_difference_brackets_a_known_gain_with_many_resamples() {
        let a = [0.0; 200];
        let b: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        let d = paired_difference_with(&a, &b, 2000, 1);
        assert!((d.mean - 0.25).abs() < 1e-12);
        // The binomial standard error is sqrt(.25·.75/200) = 0.0306.
        let [lo, hi] = d.ci;
        assert!(
            lo > 0.17 && lo < 0.21 && hi > 0.29 && hi < 0.33,
            "{lo} {hi}"
        );
    }

    #[test]
    fn wilson_matches_the_closed_form_at_known_points() {
        // 50/100: centre 0.5, half-width 1.96·sqrt(.25/100 + 1.96²/40000)/(1 + 1.96²/100).
        let (lo, hi) = wilson_interval(50, 100);
        assert!(
            (lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-3, "{hi}");
    }
}

//! Least-squares fit of a compute scaling law `L(C) = a·C^(-b) + c` to (FLOPs, loss) points.
//!
//! For a fixed exponent `b` the model is linear in `a` and `c` (`L = a·x + c` with
//! `x = C^(-b)`), so the fit is a one-dimensional search over `b` with a closed-form linear
//! regression inside (variable projection): a log-spaced grid finds the basin, golden-section
//! search polishes it. This minimises the squared error of the losses themselves, unlike
//! regressing log(L − c) on log C, and needs no starting guess. The irreducible loss `c` is
//! kept ≥ 0 and the amplitude `a` ≥ 0 (a loss that falls with compute), as losses in nats
//! are non-negative. FLOPs are scaled by their geometric mean while fitting so `C^(-b)`
//! stays near 1 whatever the magnitudes.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The fitted law; `C` in FLOPs, `L` in nats per token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalingFit {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Root-mean-square error of the fit over the points.
    pub rmse: f64,
}

impl ScalingFit {
    pub fn predict(&self, flops: f64) -> f64 {
        self.a * flops.powf(-self.b) + self.c
    }
}

/// Range of exponents searched; measured LM compute exponents are ~0.05 (Kaplan) to ~0.3
/// (small models on small data), so this brackets them with room on both sides.
const B_MIN: f64 = 1e-4;
const B_MAX: f64 = 4.0;
const GRID: usize = 400;

/// Fits `L = a·C^(-b) + c` to `(flops, loss)` points; needs 3 or more points at 2 or more
/// distinct compute values, all finite and positive.
pub fn fit_scaling_law(points: &[(f64, f64)]) -> Result<ScalingFit> {
    let bad = |msg: String| Err(TrainError::ScalingFit(msg));
    if points.len() < 3 {
        return bad(format!(
            "need at least 3 (FLOPs, loss) points for 3 parameters, got {}",
            points.len()
        ));
    }
    if let Some(p) = points
        .iter()
        .find(|(c, l)| !(c.is_finite() && *c > 0.0 && l.is_finite() && *l > 0.0))
    {
        return bad(format!(
            "point (FLOPs {}, loss {}) is not finite and positive",
            p.0, p.1
        ));
    }
    let log_mean = points.iter().map(|p| p.0.ln()).sum::<f64>() / points.len() as f64;
    let c0 = log_mean.exp();
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    if hi / lo < 1.0 + 1e-9 {
        return bad("all points have the same compute; vary the model size".into());
    }
    let scaled: Vec<(f64, f64)> = points.iter().map(|&(c, l)| (c / c0, l)).collect();
    let sse = |b: f64| linear_part(&scaled, b).2;
    // Grid in log b, then golden-section search between the best point's neighbours.
    let at = |i: usize| B_MIN * (B_MAX / B_MIN).powf(i as f64 / (GRID - 1) as f64);
    let best = (0..GRID)
        .min_by(|&i, &j| sse(at(i)).total_cmp(&sse(at(j))))
        .unwrap_or(0);
    let (mut x0, mut x1) = (
        at(best.saturating_sub(1)).ln(),
        at((best + 1).min(GRID - 1)).ln(),
    );
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let f = |lb: f64| sse(lb.exp());
    let (mut u, mut v) = (x1 - phi * (x1 - x0), x0 + phi * (x1 - x0));
    let (mut fu, mut fv) = (f(u), f(v));
    for _ in 0..100 {
        if fu < fv {
            x1 = v;
            (v, fv) = (u, fu);
            u = x1 - phi * (x1 - x0);
            fu = f(u);
        } else {
            x0 = u;
            (u, fu) = (v, fv);
            v = x0 + phi * (x1 - x0);
            fv = f(v);
        }
    }
    // The polished exponent, unless the grid point itself was better (flat basins).
    let b = [((x0 + x1) / 2.0).exp(), at(best)]
        .into_iter()
        .min_by(|p, q| sse(*p).total_cmp(&sse(*q)))
        .unwrap_or(at(best));
    let (a_scaled, c, err) = linear_part(&scaled, b);
    Ok(ScalingFit {
        // a·(C/C0)^(-b) = (a·C0^b)·C^(-b)
        a: a_scaled * c0.powf(b),
        b,
        c,
        rmse: (err / points.len() as f64).sqrt(),
    })
}

/// For a fixed `b`: the least-squares `a ≥ 0`, `c ≥ 0` of `L = a·x + c`, `x = C^(-b)`, and
/// the sum of squared errors.
fn linear_part(points: &[(f64, f64)], b: f64) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| p.0.powf(-b)).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let ml = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxl: f64 = xs
        .iter()
        .zip(points)
        .map(|(x, p)| (x - mx) * (p.1 - ml))
        .sum();
    let (mut a, mut c) = if sxx > 0.0 {
        let a = sxl / sxx;
        (a, ml - a * mx)
    } else {
        (0.0, ml)
    };
    if c < 0.0 {
        // Constrained to c = 0: L = a·x through the origin.
        let sx2: f64 = xs.iter().map(|x| x * x).sum();
        let sxl0: f64 = xs.iter().zip(points).map(|(x, p)| x * p.1).sum();
        (a, c) = (if sx2 > 0.0 { sxl0 / sx2 } else { 0.0 }, 0.0);
    }
    if a < 0.0 {
        // Loss rising with compute: the best non-increasing law is the flat mean.
        (a, c) = (0.0, ml);
    }
    let sse = xs
        .iter()
        .zip(points)
        .map(|(x, p)| (a * x + c - p.1).powi(2))
        .sum();
    (a, c, sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn law(a: f64, b: f64, c: f64, flops: &[f64]) -> Vec<(f64, f64)> {
        flops.iter().map(|&f| (f, a * f.powf(-b) + c)).collect()
    }

    #[test]
    fn recovers_a_known_law() {
        let flops = [1e12, 1e13, 1e14, 1e15, 1e16];
        for (a, b, c) in [(400.0, 0.15, 1.2), (2.0e3, 0.3, 0.5), (50.0, 0.08, 2.0)] {
            let fit = fit_scaling_law(&law(a, b, c, &flops)).unwrap();
            assert!((fit.b - b).abs() < 1e-4 * b, "{fit:?} vs b {b}");
            assert!((fit.c - c).abs() < 1e-3, "{fit:?} vs c {c}");
            assert!((fit.a / a - 1.0).abs() < 1e-2, "{fit:?} vs a {a}");
            assert!(fit.rmse < 1e-6, "{fit:?}");
        }
    }

    #[test]
    fn three_points_are_fitted_exactly() {
        let pts = law(30.0, 0.2, 1.0, &[3e9, 2e10, 1.5e11]);
        let fit = fit_scaling_law(&pts).unwrap();
        for (f, l) in pts {
            assert!((fit.predict(f) - l).abs() < 1e-6, "{fit:?}");
        }
    }

    #[test]
    fn noisy_points_stay_close() {
        let flops: Vec<f64> = (0..9).map(|i| 1e11 * 3f64.powi(i)).collect();
        let mut pts = law(400.0, 0.15, 1.2, &flops);
        for (i, p) in pts.iter_mut().enumerate() {
            // ±0.3% deterministic wiggle.
            p.1 *= 1.0 + 0.003 * if i % 2 == 0 { 1.0 } else { -1.0 };
        }
        let fit = fit_scaling_law(&pts).unwrap();
        assert!((fit.b - 0.15).abs() < 0.05, "{fit:?}");
        assert!(fit.rmse < 0.02, "{fit:?}");
        for (f, l) in pts {
            assert!((fit.predict(f) - l).abs() / l < 0.01, "{fit:?}");
        }
    }

    #[test]
    fn pure_power_law_keeps_c_at_zero() {
        let fit = fit_scaling_law(&law(1e3, 0.25, 0.0, &[1e10, 1e11, 1e12, 1e13])).unwrap();
        assert!(fit.c.abs() < 1e-6 && (fit.b - 0.25).abs() < 1e-4, "{fit:?}");
    }

    #[test]
    fn refuses_too_few_or_bad_points() {
        let e = fit_scaling_law(&[(1e9, 3.0), (1e10, 2.5)]).unwrap_err();
        assert!(e.to_string().contains("at least 3"), "{e}");
        let e = fit_scaling_law(&[(1e9, 3.0), (1e10, f64::NAN), (1e11, 2.0)]).unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
        let e = fit_scaling_law(&[(1e9, 3.0), (1e9, 2.9), (1e9, 2.8)]).unwrap_err();
        assert!(e.to_string().contains("same compute"), "{e}");
    }
}

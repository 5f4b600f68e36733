//! The DPO loss (Rafailov et al. 2023) on per-sequence log-probabilities: with
//! z = (log π(chosen) − log π(rejected)) − (log π_ref(chosen) − log π_ref(rejected)),
//! sigmoid DPO is −(1 − ε)·log σ(βz) − ε·log σ(−βz) (ε: label smoothing, cDPO), and IPO
//! (Azar et al. 2023) is (z − 1/(2β))². Optionally plus α times the chosen answers'
//! negative log-likelihood per token (RPO, Pang et al. 2024; TRL's `rpo_alpha`), which keeps
//! DPO from lowering the chosen answer's own probability when the two answers share most
//! of their tokens. Also the figures TRL logs: the implicit rewards β·(log π − log π_ref)
//! of each side, their margin and how often chosen wins.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLossKind {
    #[default]
    Sigmoid,
    Ipo,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoSettings {
    #[serde(default = "beta")]
    pub beta: f64,
    #[serde(default)]
    pub loss: DpoLossKind,
    #[serde(default)]
    pub label_smoothing: f64,
    /// Weight of the chosen answers' per-token NLL (0: plain DPO).
    #[serde(default)]
    pub rpo_alpha: f64,
}

fn beta() -> f64 {
    0.1
}

impl Default for DpoSettings {
    fn default() -> Self {
        Self {
            beta: beta(),
            loss: DpoLossKind::default(),
            label_smoothing: 0.0,
            rpo_alpha: 0.0,
        }
    }
}

/// log σ(x) = min(x, 0) − log(1 + e^(−|x|)), stable for either sign.
fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let soft = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((x.minimum(0.0)? - soft)?)
}

/// The loss as `s` says: [`dpo_loss`], plus `rpo_alpha` times the chosen answers' NLL per
/// token when it is above 0 (`chosen_tokens`: the chosen answers' trained tokens in all),
/// which is then also a figure (`nll_chosen`).
pub fn preference_loss(
    policy: (&Tensor, &Tensor),
    reference: (&Tensor, &Tensor),
    chosen_tokens: usize,
    s: &DpoSettings,
) -> Result<(Tensor, BTreeMap<String, f64>)> {
    let (loss, mut figures) = dpo_loss(policy.0, policy.1, reference.0, reference.1, s)?;
    if s.rpo_alpha == 0.0 {
        return Ok((loss, figures));
    }
    let nll = (policy.0.sum_all()? * (-1.0 / chosen_tokens.max(1) as f64))?;
    figures.insert(
        "nll_chosen".to_string(),
        nll.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
    );
    Ok(((loss + (nll * s.rpo_alpha)?)?, figures))
}

/// The mean loss over the pairs of (pairs,) log-probabilities, and the batch's figures
/// (`rewards_chosen`, `rewards_rejected`, `margins`, `accuracy`).
pub fn dpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    s: &DpoSettings,
) -> Result<(Tensor, BTreeMap<String, f64>)> {
    let z = ((policy_chosen - policy_rejected)? - (ref_chosen - ref_rejected)?)?;
    let per_pair = match s.loss {
        DpoLossKind::Sigmoid => {
            let bz = (&z * s.beta)?;
            let pos = (log_sigmoid(&bz)? * -(1.0 - s.label_smoothing))?;
            let neg = (log_sigmoid(&bz.neg()?)? * -s.label_smoothing)?;
            (pos + neg)?
        }
        DpoLossKind::Ipo => (z - 1.0 / (2.0 * s.beta))?.sqr()?,
    };
    let loss = per_pair.mean_all()?;
    let chosen = ((policy_chosen - ref_chosen)? * s.beta)?.detach();
    let rejected = ((policy_rejected - ref_rejected)? * s.beta)?.detach();
    let as_f64 = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?)
    };
    let (c, r) = (as_f64(&chosen)?, as_f64(&rejected)?);
    let n = c.len().max(1) as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let margins: Vec<f64> = c.iter().zip(&r).map(|(a, b)| a - b).collect();
    let wins = margins.iter().filter(|&&m| m > 0.0).count() as f64;
    let figures = BTreeMap::from([
        ("rewards_chosen".to_string(), mean(&c)),
        ("rewards_rejected".to_string(), mean(&r)),
        ("margins".to_string(), mean(&margins)),
        ("accuracy".to_string(), wins / n),
    ]);
    Ok((loss, figures))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// The loss's gradient in the policy log-probabilities against central differences,
    /// in f64, for each kind, with label smoothing, including large |βz| (stability).
    #[test]
    fn gradient_matches_finite_differences() {
        let pc = Var::from_tensor(&t(&[-12.0, -30.5, -3.0, -80.0])).unwrap();
        let pr = Var::from_tensor(&t(&[-14.0, -29.0, -3.5, -10.0])).unwrap();
        let (rc, rr) = (
            t(&[-13.0, -30.0, -2.0, -40.0]),
            t(&[-13.5, -30.0, -4.0, -12.0]),
        );
        let settings = [
            DpoSettings::default(),
            DpoSettings {
                beta: 0.5,
                loss: DpoLossKind::Sigmoid,
                label_smoothing: 0.2,
                rpo_alpha: 0.0,
            },
            DpoSettings {
                beta: 0.3,
                loss: DpoLossKind::Ipo,
                label_smoothing: 0.0,
                rpo_alpha: 0.0,
            },
            DpoSettings {
                beta: 0.2,
                loss: DpoLossKind::Sigmoid,
                label_smoothing: 0.0,
                rpo_alpha: 0.7,
            },
        ];
        // 37 chosen tokens in all, for the RPO term.
        for s in settings {
            let f = |a: &Tensor, b: &Tensor| -> f64 {
                let (l, _) = preference_loss((a, b), (&rc, &rr), 37, &s).unwrap();
                l.to_scalar::<f64>().unwrap()
            };
            let (l, _) =
                preference_loss((pc.as_tensor(), pr.as_tensor()), (&rc, &rr), 37, &s).unwrap();
            let g = l.backward().unwrap();
            for (vi, var) in [&pc, &pr].into_iter().enumerate() {
                let grad = g.get(var.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
                let x = var.as_tensor().to_vec1::<f64>().unwrap();
                for i in 0..x.len() {
                    let h = 1e-5;
                    let shifted = |d: f64| {
                        let mut y = x.clone();
                        y[i] += d;
                        t(&y)
                    };
                    let (up, down) = if vi == 0 {
                        (
                            f(&shifted(h), pr.as_tensor()),
                            f(&shifted(-h), pr.as_tensor()),
                        )
                    } else {
                        (
                            f(pc.as_tensor(), &shifted(h)),
                            f(pc.as_tensor(), &shifted(-h)),
                        )
                    };
                    let fd = (up - down) / (2.0 * h);
                    assert!(
                        (grad[i] - fd).abs() <= 1e-8 + 1e-6 * fd.abs(),
                        "{s:?} side {vi} pair {i}: {} vs {fd}",
                        grad[i]
                    );
                }
            }
        }
    }

    /// Known values: z = 0 gives log 2 (sigmoid) and 1/(4β²) (IPO); the figures follow
    /// their definitions.
    #[test]
    fn values_and_figures() {
        let (a, b) = (t(&[-1.0, -2.0]), t(&[-3.0, -1.0]));
        let (l, fig) = dpo_loss(&a, &b, &a, &b, &DpoSettings::default()).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 2f64.ln()).abs() < 1e-12);
        assert_eq!(fig["accuracy"], 0.0);
        let ipo = DpoSettings {
            beta: 0.25,
            loss: DpoLossKind::Ipo,
            label_smoothing: 0.0,
            rpo_alpha: 0.0,
        };
        let (l, _) = dpo_loss(&a, &b, &a, &b, &ipo).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 4.0).abs() < 1e-12);
        let (pc, rc) = (t(&[-1.0, -2.0]), t(&[-2.0, -2.0]));
        let (pr, rr) = (t(&[-5.0, -1.0]), t(&[-4.0, -2.0]));
        let (_, fig) = dpo_loss(&pc, &pr, &rc, &rr, &DpoSettings::default()).unwrap();
        // rewards: chosen [0.1, 0], rejected [-0.1, 0.1]; margins [0.2, -0.1].
        assert!((fig["rewards_chosen"] - 0.05).abs() < 1e-12);
        assert!((fig["rewards_rejected"] - 0.0).abs() < 1e-12);
        assert!((fig["margins"] - 0.05).abs() < 1e-12);
        assert_eq!(fig["accuracy"], 0.5);
        let (l0, fig0) =
            preference_loss((&pc, &pr), (&rc, &rr), 2, &DpoSettings::default()).unwrap();
        let (l1, _) = dpo_loss(&pc, &pr, &rc, &rr, &DpoSettings::default()).unwrap();
        assert_eq!(
            l0.to_scalar::<f64>().unwrap(),
            l1.to_scalar::<f64>().unwrap()
        );
        assert!(!fig0.contains_key("nll_chosen"), "plain DPO logs no NLL");
        // RPO adds alpha · (−Σ log π(chosen) / tokens) = 0.5 · 3/6 to DPO's log 2.
        let rpo = DpoSettings {
            rpo_alpha: 0.5,
            ..DpoSettings::default()
        };
        let (l, fig) = preference_loss((&a, &b), (&a, &b), 6, &rpo).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - (2f64.ln() + 0.25)).abs() < 1e-12);
        assert!((fig["nll_chosen"] - 0.5).abs() < 1e-12);
    }
}

//! Turning logits into the next token: penalties, then top-k → top-p → min-p filtering,
//! then temperature and a seeded draw (llama.cpp's default sampler order). Temperature 0
//! is greedy.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; 0 keeps all.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recent tokens; 1 is off.
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every recent token; 0 is off.
    pub presence_penalty: f32,
    /// Subtracted per occurrence of a recent token; 0 is off.
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 42,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Rejects values that have no meaning, naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidSampling(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !v.is_finite() || !(-2.0..=2.0).contains(&v) {
                return bad(format!("{name} must be in [-2, 2], got {v}"));
            }
        }
        Ok(())
    }
}

/// Applies repetition, presence and frequency penalties for the last `n` tokens of
/// `history` to `logits` in place.
pub fn apply_penalties(logits: &mut [f32], history: &[u32], p: &SamplingParams) {
    if p.repetition_penalty == 1.0 && p.presence_penalty == 0.0 && p.frequency_penalty == 0.0 {
        return;
    }
    let recent = &history[history.len().saturating_sub(p.penalty_last_n)..];
    let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for &t in recent {
        *counts.entry(t).or_default() += 1;
    }
    for (&t, &c) in &counts {
        let Some(l) = logits.get_mut(t as usize) else {
            continue;
        };
        *l = if *l > 0.0 {
            *l / p.repetition_penalty
        } else {
            *l * p.repetition_penalty
        };
        *l -= c as f32 * p.frequency_penalty + p.presence_penalty;
    }
}

/// Index of the largest logit (the lowest index among ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Candidates (id, logit) sorted by logit, descending, after top-k, top-p and min-p.
pub fn filter_candidates(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i as u32, l))
        .collect();
    let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if p.top_k > 0 && p.top_k < c.len() {
        c.select_nth_unstable_by(p.top_k - 1, by_logit);
        c.truncate(p.top_k);
    }
    c.sort_unstable_by(by_logit);
    if c.is_empty() {
        return c;
    }
    let probs = softmax(&c.iter().map(|x| x.1).collect::<Vec<_>>());
    if p.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = c.len();
        for (i, pr) in probs.iter().enumerate() {
            cum += pr;
            if cum >= p.top_p {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
    }
    if p.min_p > 0.0 {
        let threshold = probs[0] * p.min_p;
        let keep = probs
            .iter()
            .take(c.len())
            .take_while(|&&pr| pr >= threshold)
            .count();
        c.truncate(keep.max(1));
    }
    c
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|l| ((l - m) as f64).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| (x / z) as f32).collect()
}

/// Samples tokens with one set of parameters and its own seeded RNG, so a given seed
/// reproduces a given sequence.
#[derive(Debug, Clone)]
pub struct LogitsProcessor {
    params: SamplingParams,
    rng: StdRng,
}

impl LogitsProcessor {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            rng: StdRng::seed_from_u64(params.seed),
            params,
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next token given the last position's `logits` and the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut logits = logits.to_vec();
        apply_penalties(&mut logits, history, &self.params);
        if self.params.temperature == 0.0 {
            return argmax(&logits);
        }
        let cands = filter_candidates(&logits, &self.params);
        if cands.len() <= 1 {
            return cands.first().map_or_else(|| argmax(&logits), |c| c.0);
        }
        let scaled: Vec<f32> = cands
            .iter()
            .map(|c| c.1 / self.params.temperature)
            .collect();
        let probs = softmax(&scaled);
        let r: f32 = self.rng.random();
        let mut cum = 0.0;
        for (c, p) in cands.iter().zip(&probs) {
            cum += p;
            if r < cum {
                return c.0;
            }
        }
        cands[cands.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SamplingParams {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_is_argmax_and_ignores_rng() {
        let logits = [0.1, 3.0, -1.0, 2.9];
        let mut lp = LogitsProcessor::new(SamplingParams::greedy()).unwrap();
        for _ in 0..5 {
            assert_eq!(lp.sample(&logits, &[]), 1);
        }
    }

    #[test]
    fn top_k_keeps_exactly_the_k_largest() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 17) % 50) as f32).collect();
        let c = filter_candidates(
            &logits,
            &SamplingParams {
                top_k: 5,
                ..params()
            },
        );
        let mut ids: Vec<u32> = c.iter().map(|x| x.0).collect();
        ids.sort();
        let mut want: Vec<u32> = (0..50u32).filter(|&i| (i * 17) % 50 >= 45).collect();
        want.sort();
        assert_eq!(ids, want);
    }

    #[test]
    fn top_p_keeps_smallest_prefix_reaching_p() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let logits = [0.5f32.ln(), 0.25f32.ln(), 0.125f32.ln(), 0.125f32.ln()];
        let c = filter_candidates(
            &logits,
            &SamplingParams {
                top_p: 0.7,
                ..params()
            },
        );
        assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        let c = filter_candidates(
            &logits,
            &SamplingParams {
                top_p: 0.5,
                ..params()
            },
        );
        assert_eq!(c.len(), 1);
        let c = filter_candidates(
            &logits,
            &SamplingParams {
                top_p: 1.0,
                ..params()
            },
        );
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_best() {
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.15f32.ln(), 0.05f32.ln()];
        let c = filter_candidates(
            &logits,
            &SamplingParams {
                min_p: 0.2,
                ..params()
            },
        );
        // 0.2 * 0.5 = 0.1 threshold keeps 0.5, 0.3, 0.15.
        assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_seed_dependent() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut lp = LogitsProcessor::new(SamplingParams { seed, ..params() }).unwrap();
            (0..40).map(|_| lp.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.7f32.ln(), 0.2f32.ln(), 0.1f32.ln()];
        let mut lp = LogitsProcessor::new(params()).unwrap();
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[lp.sample(&logits, &[]) as usize] += 1;
        }
        let freq: Vec<f64> = counts.iter().map(|&c| c as f64 / 20_000.0).collect();
        assert!(
            (freq[0] - 0.7).abs() < 0.02 && (freq[1] - 0.2).abs() < 0.02,
            "{freq:?}"
        );
    }

    #[test]
    fn penalties_push_down_recent_tokens() {
        let mut l = vec![2.0, -2.0, 1.0, 1.0];
        let p = SamplingParams {
            repetition_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..params()
        };
        apply_penalties(&mut l, &[0, 1, 1, 3], &p);
        assert_eq!(
            l,
            vec![
                2.0 / 2.0 - 0.25 - 0.5,
                -2.0 * 2.0 - 0.5 - 0.5,
                1.0,
                0.5 - 0.25 - 0.5
            ]
        );
        // Tokens outside the window are not penalised.
        let mut l = vec![1.0, 1.0];
        apply_penalties(
            &mut l,
            &[0, 1, 1],
            &SamplingParams {
                penalty_last_n: 1,
                ..p
            },
        );
        assert_eq!(l[0], 1.0);
    }

    #[test]
    fn invalid_values_are_rejected_by_name() {
        for (p, name) in [
            (
                SamplingParams {
                    temperature: -1.0,
                    ..params()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    top_p: 0.0,
                    ..params()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    min_p: 1.5,
                    ..params()
                },
                "min_p",
            ),
            (
                SamplingParams {
                    repetition_penalty: 0.0,
                    ..params()
                },
                "repetition_penalty",
            ),
            (
                SamplingParams {
                    frequency_penalty: 9.0,
                    ..params()
                },
                "frequency_penalty",
            ),
        ] {
            let err = LogitsProcessor::new(p).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}

//! Greedy evaluation of a model on task items: each prompt rendered with the model's chat
//! template, answered greedily, scored; the mean with a 95% interval, and a paired bootstrap
//! for the difference between two models on the same items.

use kiln_model::{sample_completions, LoadedModel, SamplingParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::items::TaskItem;
use super::scorer::Scorer;
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub line: usize,
    pub completion: String,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskEval {
    pub scorer: String,
    pub n: usize,
    pub mean: f64,
    /// 95% interval of the mean (Wilson's for 0/1 scores, else normal).
    pub ci95: (f64, f64),
    pub items: Vec<ItemResult>,
}

/// The prompt's tokens, through the model's chat prompt.
pub fn prompt_ids(model: &LoadedModel, item: &TaskItem) -> Result<Vec<u32>> {
    Ok(model
        .chat_prompt()?
        .encode(&model.tokenizer, &item.messages)?)
}

pub fn evaluate_task(
    model: &LoadedModel,
    items: &[TaskItem],
    scorer: &dyn Scorer,
    max_tokens: usize,
    mut progress: impl FnMut(usize),
) -> Result<TaskEval> {
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ids = prompt_ids(model, item)?;
        let greedy = SamplingParams::greedy();
        let out = sample_completions(
            &model.model,
            &model.tokenizer,
            &ids,
            1,
            &greedy,
            max_tokens,
            &model.device,
        )?;
        let tokens = out.into_iter().next().unwrap_or_default();
        let completion = model.tokenizer.decode(&tokens)?;
        let score = scorer.score(item, &completion)?;
        results.push(ItemResult {
            line: item.line,
            completion,
            score,
        });
        progress(i + 1);
    }
    let scores: Vec<f64> = results.iter().map(|r| r.score).collect();
    let n = scores.len();
    let mean = scores.iter().sum::<f64>() / n.max(1) as f64;
    let binary = scores.iter().all(|&s| s == 0.0 || s == 1.0);
    let ci95 = if binary {
        wilson_interval(scores.iter().filter(|&&s| s == 1.0).count(), n)
    } else {
        let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        let half = 1.96 * (var / n.max(1) as f64).sqrt();
        (mean - half, mean + half)
    };
    Ok(TaskEval {
        scorer: scorer.name().to_string(),
        n,
        mean,
        ci95,
        items: results,
    })
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

/// Mean of `b - a` over paired items and its 95% percentile-bootstrap interval
/// (`resamples` draws of the items with replacement, seeded).
pub fn paired_bootstrap(
    a: &TaskEval,
    b: &TaskEval,
    resamples: usize,
    seed: u64,
) -> Result<(f64, f64, f64)> {
    let lines = |e: &TaskEval| e.items.iter().map(|r| r.line).collect::<Vec<_>>();
    if lines(a) != lines(b) {
        return Err(TrainError::InvalidArgument(
            "the two evaluations are not over the same items (lines differ)".into(),
        ));
    }
    let d: Vec<f64> = a
        .items
        .iter()
        .zip(&b.items)
        .map(|(x, y)| y.score - x.score)
        .collect();
    let n = d.len();
    if n == 0 {
        return Err(TrainError::InvalidArgument("no items to compare".into()));
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Ok((mean, at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn eval(scores: &[f64]) -> TaskEval {
        TaskEval {
            scorer: "exact".into(),
            n: scores.len(),
            mean: 0.0,
            ci95: (0.0, 0.0),
            items: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| ItemResult {
                    line: i + 1,
                    completion: String::new(),
                    score,
                })
                .collect(),
        }
    }

    #[test]
    fn paired_bootstrap_brackets_the_difference() {
        let a = eval(&[0.0; 200]);
        let b = eval(
            &(0..200)
                .map(|i| f64::from(u8::from(i % 4 == 0)))
                .collect::<Vec<_>>(),
        );
        let (d, lo, hi) = paired_bootstrap(&a, &b, 2000, 1).unwrap();
        assert!((d - 0.25).abs() < 1e-12);
        // The binomial standard error is sqrt(.25·.75/200) = 0.0306.
        assert!(
            lo > 0.17 && lo < 0.21 && hi > 0.29 && hi < 0.33,
            "{lo} {hi}"
        );
        assert!(paired_bootstrap(&a, &eval(&[0.0; 10]), 10, 1).is_err());
    }
}

//! Greedy evaluation of a model on a prompt task (`kiln finetune eval`): each prompt through
//! the model's chat prompt, answered greedily, scored; the mean with a 95% interval, and a
//! paired bootstrap for the difference between two models on the same items.

use kiln_model::{sample_completions, ChatPrompt, LoadedModel, SamplingParams};
use kiln_stats::{paired_difference_with, wilson_interval};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::scoring::Scorer;
use crate::tasks::prompt_items::TaskItem;

/// One item's completion and its score (a line of the result file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredCompletion {
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
    pub items: Vec<ScoredCompletion>,
}

/// The prompt's tokens, through the model's chat prompt.
pub(crate) fn prompt_ids(
    model: &LoadedModel,
    chat: &ChatPrompt,
    item: &TaskItem,
) -> Result<Vec<u32>> {
    Ok(chat.encode(&model.tokenizer, &item.messages)?)
}

pub fn evaluate_task(
    model: &LoadedModel,
    items: &[TaskItem],
    scorer: &dyn Scorer,
    max_tokens: usize,
    mut progress: impl FnMut(usize),
) -> Result<TaskEval> {
    let chat = model.chat_prompt()?;
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ids = prompt_ids(model, &chat, item)?;
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
        results.push(ScoredCompletion {
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

/// Mean of `b - a` over paired items and its 95% percentile-bootstrap interval
/// (`resamples` draws of the items with replacement, seeded); the two evaluations must be
/// over the same items.
pub fn paired_bootstrap(
    a: &TaskEval,
    b: &TaskEval,
    resamples: usize,
    seed: u64,
) -> Result<(f64, f64, f64)> {
    let lines = |e: &TaskEval| e.items.iter().map(|r| r.line).collect::<Vec<_>>();
    if lines(a) != lines(b) {
        return Err(EvalError::Task(
            "the two evaluations are not over the same items (lines differ)".into(),
        ));
    }
    if a.items.is_empty() {
        return Err(EvalError::Task("no items to compare".into()));
    }
    let scores = |e: &TaskEval| e.items.iter().map(|r| r.score).collect::<Vec<_>>();
    let d = paired_difference_with(&scores(a), &scores(b), resamples, seed);
    Ok((d.mean, d.ci[0], d.ci[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(scores: &[f64]) -> TaskEval {
        TaskEval {
            scorer: "exact".into(),
            n: scores.len(),
            mean: 0.0,
            ci95: (0.0, 0.0),
            items: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| ScoredCompletion {
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

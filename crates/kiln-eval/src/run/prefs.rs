//! Synthetic preference pairs: sample several completions per prompt, score them, and pair
//! the best against the worst (TRL's `{"prompt", "chosen", "rejected"}`, which `kiln
//! finetune dpo` reads). Prompts whose samples all score the same teach nothing and are
//! counted, not paired.

use kiln_model::{sample_completions, LoadedModel, SamplingParams};
use serde::Serialize;

use super::prompt_eval::prompt_ids;
use crate::error::Result;
use crate::scoring::Scorer;
use crate::tasks::prompt_items::TaskItem;

#[derive(Debug, Clone)]
pub struct PrefsOptions {
    pub samples: usize,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefPair {
    pub prompt: serde_json::Value,
    pub chosen: String,
    pub rejected: String,
    pub chosen_score: f64,
    pub rejected_score: f64,
    /// The item's line in the prompts file.
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefsReport {
    pub prompts: usize,
    pub pairs: usize,
    /// Prompts whose samples all scored the same.
    pub tied: usize,
    /// Mean score over every sample: how good the sampling model already is.
    pub mean_sample_score: f64,
    /// Pairs dropped by [`cap_repeated_pairs`].
    pub capped: usize,
}

/// Keeps at most `max` pairs with the same chosen and rejected texts (trimmed), in order.
///
/// On short-answer tasks the pairs repeat: "programming" over "language" dozens of times.
/// DPO on such a set learns a blanket preference of one answer over another (a shift of the
/// class prior) rather than when each is right; capping each (chosen, rejected) combination
/// keeps the pairs about the inputs.
pub fn cap_repeated_pairs(pairs: Vec<PrefPair>, max: usize) -> (Vec<PrefPair>, usize) {
    let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
    let before = pairs.len();
    let kept: Vec<PrefPair> = pairs
        .into_iter()
        .filter(|p| {
            let key = (p.chosen.trim().to_string(), p.rejected.trim().to_string());
            let n = seen.entry(key).or_default();
            *n += 1;
            *n <= max
        })
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

pub fn build_prefs(
    model: &LoadedModel,
    items: &[TaskItem],
    scorer: &dyn Scorer,
    opts: &PrefsOptions,
    mut progress: impl FnMut(usize),
) -> Result<(Vec<PrefPair>, PrefsReport)> {
    let mut pairs = vec![];
    let mut report = PrefsReport {
        prompts: items.len(),
        ..PrefsReport::default()
    };
    let (mut score_sum, mut scored) = (0.0, 0usize);
    let chat = model.chat_prompt()?;
    for (i, item) in items.iter().enumerate() {
        let ids = prompt_ids(model, &chat, item)?;
        // A different stream per prompt, reproducible from the one seed.
        let sampling = SamplingParams {
            seed: opts
                .sampling
                .seed
                .wrapping_add((i as u64).wrapping_mul(1_000_003)),
            ..opts.sampling.clone()
        };
        let samples = sample_completions(
            &model.model,
            &model.tokenizer,
            &ids,
            opts.samples,
            &sampling,
            opts.max_tokens,
            &model.device,
        )?;
        let mut graded = Vec::with_capacity(samples.len());
        for tokens in samples {
            let text = model.tokenizer.decode(&tokens)?;
            let score = scorer.score(item, &text)?;
            score_sum += score;
            scored += 1;
            graded.push((score, text));
        }
        // The first best and the first worst: stable under ties.
        let best = graded
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(b.0.cmp(&a.0)));
        let worst = graded
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(&b.0)));
        match (best, worst) {
            (Some((_, b)), Some((_, w))) if b.0 > w.0 => pairs.push(PrefPair {
                prompt: item.prompt.clone(),
                chosen: b.1.clone(),
                rejected: w.1.clone(),
                chosen_score: b.0,
                rejected_score: w.0,
                line: item.line,
            }),
            _ => report.tied += 1,
        }
        progress(i + 1);
    }
    report.pairs = pairs.len();
    report.mean_sample_score = score_sum / scored.max(1) as f64;
    Ok((pairs, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(chosen: &str, rejected: &str, line: usize) -> PrefPair {
        PrefPair {
            prompt: serde_json::Value::String(format!("p{line}")),
            chosen: chosen.into(),
            rejected: rejected.into(),
            chosen_score: 1.0,
            rejected_score: 0.0,
            line,
        }
    }

    #[test]
    fn cap_keeps_the_first_pairs_of_each_combination() {
        let pairs = vec![
            pair("programming", "language", 1),
            pair("language", "programming", 2),
            pair(" programming", "language\n", 3),
            pair("programming", "language", 4),
            pair("hardware", "language", 5),
        ];
        let (kept, dropped) = cap_repeated_pairs(pairs, 2);
        let lines: Vec<usize> = kept.iter().map(|p| p.line).collect();
        // The reversed combination is a different one; whitespace does not make a new one.
        assert_eq!(lines, vec![1, 2, 3, 5]);
        assert_eq!(dropped, 1);
    }
}

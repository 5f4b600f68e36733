//! Multiple-choice metrics: `acc` (the choice with the highest summed log-likelihood) and
//! `acc_norm` (log-likelihood per character of the continuation, as OLMES' `acc_per_char`
//! and lm-evaluation-harness's `acc_norm` compute it), each with its standard error and a
//! bootstrap confidence interval.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::answer::{exact_match, f1, last_number, same_number};
use crate::backend::ChoiceScore;
use crate::gen_item::{GenItem, Scoring};
use crate::item::McItem;
use crate::overlap::{bleu, rouge_l};

/// One question's outcome (a line of the per-sample output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub gold: usize,
    pub logprobs: Vec<f64>,
    pub tokens: Vec<usize>,
    pub chars: Vec<usize>,
    pub is_greedy: Vec<bool>,
    pub pred: usize,
    pub pred_norm: usize,
    pub acc: f64,
    pub acc_norm: f64,
}

/// The first index of the largest value (numpy's argmax, so ties break as the harness's).
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

pub fn score_item(item: &McItem, scores: &[ChoiceScore]) -> ItemResult {
    let chars: Vec<usize> = item
        .choices
        .iter()
        .map(|c| c.continuation.chars().count())
        .collect();
    let pred = argmax(scores.iter().map(|s| s.logprob));
    let pred_norm = argmax(
        scores
            .iter()
            .zip(&chars)
            .map(|(s, &c)| s.logprob / c.max(1) as f64),
    );
    ItemResult {
        doc_id: item.doc_id,
        native_id: item.native_id.clone(),
        gold: item.gold,
        logprobs: scores.iter().map(|s| s.logprob).collect(),
        tokens: scores.iter().map(|s| s.tokens).collect(),
        chars,
        is_greedy: scores.iter().map(|s| s.is_greedy).collect(),
        pred,
        pred_norm,
        acc: f64::from(u8::from(pred == item.gold)),
        acc_norm: f64::from(u8::from(pred_norm == item.gold)),
    }
}

/// One generated answer's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub answer: String,
    pub completion: String,
    /// The answer extracted from the completion (its last number), for number answers.
    pub extracted: Option<String>,
    pub exact_match: f64,
    /// Text answers: SQuAD F1, sentence BLEU and ROUGE-L, best over the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
}

impl GenResult {
    /// Its metrics, by name (exact_match, and f1/bleu/rouge_l for text answers).
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![("exact_match", self.exact_match)];
        for (name, v) in [
            ("f1", self.f1),
            ("bleu", self.bleu),
            ("rouge_l", self.rouge_l),
        ] {
            if let Some(v) = v {
                m.push((name, v));
            }
        }
        m
    }
}

/// Scores a completion of a generation task: by its last number (GSM8K) or as text.
pub fn score_generation(item: &GenItem, completion: &str) -> GenResult {
    let mut r = GenResult {
        doc_id: item.doc_id,
        native_id: item.native_id.clone(),
        answer: item.answer.clone(),
        completion: completion.to_string(),
        extracted: None,
        exact_match: 0.0,
        f1: None,
        bleu: None,
        rouge_l: None,
    };
    match item.scoring {
        Scoring::LastNumber => {
            r.extracted = last_number(completion);
            let exact = r
                .extracted
                .as_deref()
                .is_some_and(|x| same_number(x, &item.answer));
            r.exact_match = f64::from(u8::from(exact));
        }
        Scoring::Text => {
            let answers: Vec<&str> = std::iter::once(item.answer.as_str())
                .chain(item.aliases.iter().map(String::as_str))
                .collect();
            let best = |f: &dyn Fn(&str) -> f64| answers.iter().map(|a| f(a)).fold(0.0, f64::max);
            r.exact_match = best(&|a| f64::from(u8::from(exact_match(completion, a))));
            r.f1 = Some(best(&|a| f1(completion, a)));
            r.bleu = Some(bleu(completion, &answers));
            r.rouge_l = Some(rouge_l(completion, &answers));
        }
    }
    r
}

/// A mean over questions with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / √n, as the harness reports).
    pub stderr: f64,
    /// 95% percentile bootstrap interval.
    pub ci: [f64; 2],
}

pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Mean, standard error and a seeded 95% bootstrap interval of `xs`.
pub fn summarize(xs: &[f64], seed: u64) -> Summary {
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
    let means = bootstrap(n, seed, |idx| idx.map(|i| xs[i]).sum::<f64>() / n as f64);
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
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| stat(&mut (0..n).map(|_| rng.random_range(0..n))))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// The 95% percentile interval of sorted bootstrap statistics.
pub fn percentile_interval(sorted: &[f64]) -> [f64; 2] {
    let at =
        |q: f64| sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)];
    [at(0.025), at(0.975)]
}

/// Paired bootstrap of the mean difference `b - a` over the same questions: the mean and
/// its 95% interval. A difference whose interval excludes 0 is significant at 5%.
pub fn paired_difference(a: &[f64], b: &[f64], seed: u64) -> Summary {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    summarize(&d, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::LoglikRequest;

    fn item(continuations: &[&str], gold: usize) -> McItem {
        McItem {
            doc_id: 0,
            native_id: serde_json::Value::Null,
            choices: continuations
                .iter()
                .map(|c| LoglikRequest {
                    context: "Q:".into(),
                    continuation: c.to_string(),
                })
                .collect(),
            gold,
        }
    }

    fn scores(lps: &[f64]) -> Vec<ChoiceScore> {
        lps.iter()
            .map(|&logprob| ChoiceScore {
                logprob,
                is_greedy: false,
                tokens: 1,
            })
            .collect()
    }

    #[test]
    fn acc_takes_the_sum_and_acc_norm_the_per_character_likelihood() {
        // " a" (2 chars) at -2 vs " abcdefgh" (9 chars) at -3: the short one is likelier in
        // sum, the long one per character (-1 vs -0.33).
        let it = item(&[" a", " abcdefgh"], 1);
        let r = score_item(&it, &scores(&[-2.0, -3.0]));
        assert_eq!((r.pred, r.pred_norm, r.acc, r.acc_norm), (0, 1, 0.0, 1.0));
        assert_eq!(r.chars, vec![2, 9]);
    }

    #[test]
    fn ties_go_to_the_first_choice() {
        let r = score_item(&item(&[" x", " y", " z"], 2), &scores(&[-1.0, -1.0, -1.0]));
        assert_eq!(r.pred, 0);
    }

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
}

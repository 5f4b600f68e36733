//! Rolling log-likelihood (perplexity) tasks: the log-likelihood of whole documents,
//! reported as token, word and byte perplexity and bits per byte over the corpus, as
//! lm-evaluation-harness's `loglikelihood_rolling` tasks (WikiText) report them.
//!
//! A document is scored in windows of at most [`WINDOW_CHARS`] characters cut at line
//! ends (or spaces), each a continuation of an empty context: its first token is context
//! (scored only after a BOS token), the rest are predicted. Corpus figures are ratios of
//! sums (total log-likelihood over total tokens, words or bytes), with bootstrap intervals
//! from resampling documents.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tasks::mc_item::{LoglikRequest, McItem};
use crate::tasks::olmes::{json_lines, line_error};
use kiln_lm::LanguageModel;
use kiln_stats::{bootstrap, percentile_interval, Summary};

/// The longest window, in characters (about a thousand tokens of English).
pub const WINDOW_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingDoc {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub text: String,
}

/// A document's log-likelihood and its size in the units the perplexities divide by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingResult {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    /// Natural log.
    pub logprob: f64,
    /// Tokens scored.
    pub tokens: usize,
    /// Whitespace-separated words.
    pub words: usize,
    /// UTF-8 bytes.
    pub bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextLine {
    #[serde(default)]
    id: serde_json::Value,
    text: String,
}

/// Documents from a JSONL file of `{"id", "text"}` lines, or a plain text file (one
/// document).
pub fn read_documents(path: &std::path::Path) -> Result<Vec<RollingDoc>> {
    let name = path.to_string_lossy();
    if !(name.ends_with(".jsonl") || name.ends_with(".jsonl.gz")) {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        return Ok(vec![RollingDoc {
            doc_id: 0,
            native_id: serde_json::Value::Null,
            text,
        }]);
    }
    let docs: Vec<RollingDoc> = json_lines::<TextLine>(path, "a document {\"id\", \"text\"}")?
        .into_iter()
        .enumerate()
        .map(|(k, (_, l))| RollingDoc {
            doc_id: k,
            native_id: l.id,
            text: l.text,
        })
        .collect();
    if docs.is_empty() {
        return Err(line_error(path)(0, "no documents".into()));
    }
    Ok(docs)
}

/// Cuts `text` into windows of at most `max` characters, at line ends where it can, else
/// at spaces, else anywhere (on a character boundary). The windows concatenate to `text`.
pub fn windows(text: &str, max: usize) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = text;
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let head = &rest[..limit];
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .filter(|&i| i > 0)
            .map_or(limit, |i| i + 1);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Scores one document through `lm`, window by window.
pub fn score_document(lm: &dyn LanguageModel, doc: &RollingDoc) -> Result<RollingResult> {
    let item = McItem {
        doc_id: doc.doc_id,
        native_id: doc.native_id.clone(),
        choices: windows(&doc.text, WINDOW_CHARS)
            .into_iter()
            .filter(|w| !w.trim().is_empty())
            .map(|w| LoglikRequest {
                context: String::new(),
                continuation: w.to_string(),
            })
            .collect(),
        gold: 0,
    };
    let scores = if item.choices.is_empty() {
        vec![]
    } else {
        lm.loglik(&item.choices)?
    };
    Ok(RollingResult {
        doc_id: doc.doc_id,
        native_id: doc.native_id.clone(),
        logprob: scores.iter().map(|s| s.logprob).sum(),
        tokens: scores.iter().map(|s| s.tokens).sum(),
        words: doc.text.split_whitespace().count(),
        bytes: doc.text.len(),
    })
}

/// The corpus figures: `(name, summary)` for token, word and byte perplexity and bits per
/// byte, each a ratio of sums with a bootstrap interval over documents.
pub fn corpus_metrics(results: &[RollingResult], seed: u64) -> Vec<(String, Summary)> {
    type Unit = fn(&RollingResult) -> f64;
    let units: [(&str, Unit); 3] = [
        ("token_perplexity", |r| r.tokens as f64),
        ("word_perplexity", |r| r.words as f64),
        ("byte_perplexity", |r| r.bytes as f64),
    ];
    let mut out = vec![];
    let nll: Vec<f64> = results.iter().map(|r| -r.logprob).collect();
    for (name, unit) in units {
        let den: Vec<f64> = results.iter().map(unit).collect();
        out.push((name.to_string(), ratio_summary(&nll, &den, f64::exp, seed)));
    }
    let bytes: Vec<f64> = results.iter().map(|r| r.bytes as f64).collect();
    out.push((
        "bits_per_byte".into(),
        ratio_summary(&nll, &bytes, |x| x / std::f64::consts::LN_2, seed),
    ));
    out
}

/// `f(sum num / sum den)` with a seeded 95% percentile bootstrap over the pairs; the
/// standard error is the bootstrap's standard deviation.
fn ratio_summary(num: &[f64], den: &[f64], f: impl Fn(f64) -> f64, seed: u64) -> Summary {
    let n = num.len();
    let stat = |idx: &mut dyn Iterator<Item = usize>| {
        let (mut a, mut b) = (0.0, 0.0);
        for i in idx {
            a += num[i];
            b += den[i];
        }
        f(a / b.max(f64::MIN_POSITIVE))
    };
    let mean = stat(&mut (0..n));
    if n == 0 {
        return Summary {
            mean: f64::NAN,
            stderr: f64::NAN,
            ci: [f64::NAN; 2],
        };
    }
    let boots = bootstrap(n, seed, |idx| stat(idx));
    let m = boots.iter().sum::<f64>() / boots.len() as f64;
    let var = boots.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (boots.len() - 1) as f64;
    Summary {
        mean,
        stderr: var.sqrt(),
        ci: percentile_interval(&boots),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_at_line_ends_and_rejoin() {
        let text = "one two three\nfour five\nsix seven eight nine\n";
        let w = windows(text, 15);
        assert_eq!(w.concat(), text);
        assert!(w.iter().all(|x| x.chars().count() <= 15), "{w:?}");
        assert_eq!(w[0], "one two three\n");
        // No line end within the limit: cut after a space; no space: anywhere.
        assert_eq!(windows("aaaa bbbb cccc", 10), vec!["aaaa bbbb ", "cccc"]);
        assert_eq!(windows("ééééé", 2), vec!["éé", "éé", "é"]);
    }

    #[test]
    fn corpus_figures_are_ratios_of_sums() {
        let r = |logprob: f64, tokens, words, bytes| RollingResult {
            doc_id: 0,
            native_id: serde_json::Value::Null,
            logprob,
            tokens,
            words,
            bytes,
        };
        let docs = [r(-10.0, 5, 4, 20), r(-30.0, 15, 6, 40)];
        let m = corpus_metrics(&docs, 1);
        let get = |k: &str| m.iter().find(|(n, _)| n == k).unwrap().1;
        assert!((get("token_perplexity").mean - (40.0f64 / 20.0).exp()).abs() < 1e-9);
        assert!((get("word_perplexity").mean - (40.0f64 / 10.0).exp()).abs() < 1e-9);
        assert!((get("byte_perplexity").mean - (40.0f64 / 60.0).exp()).abs() < 1e-9);
        assert!((get("bits_per_byte").mean - 40.0 / 60.0 / std::f64::consts::LN_2).abs() < 1e-12);
        let ci = get("token_perplexity").ci;
        assert!(ci[0] <= ci[1]);
    }
}

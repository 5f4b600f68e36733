//! Reranking: a second, slower judge of relevance over the first stage's best chunks.
//! kiln's rerankers ask a language model about each passage on its own (pointwise), in one
//! of two ways: the probability of "Yes" against "No" after a relevance question (as monoT5
//! and the Yes/No prompts of LLM rerankers), or the likelihood of the query as a question
//! the passage answers (UPR, Sachan et al. 2022), which asks the model for nothing but
//! language modelling and so suits small models. Any kiln-lm model serves (a local model
//! or an OpenAI-compatible endpoint, through its log-likelihoods); a cross-encoder can
//! implement the same trait.

use kiln_lm::{LanguageModel, LoglikRequest};

use crate::error::{RagError, Result};
use crate::retrieve::Hit;

/// Scores passages for a query; higher is more relevant.
pub trait Reranker: Send + Sync {
    fn scores(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>>;
}

/// How a language model scores a passage's relevance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankKind {
    /// P("Yes") / (P("Yes") + P("No")) after a relevance question.
    YesNo,
    /// log P(query | passage), the query read as a question the passage answers.
    QueryLikelihood,
}

impl std::str::FromStr for RerankKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "yesno" => Ok(Self::YesNo),
            "qlik" => Ok(Self::QueryLikelihood),
            _ => Err(format!(
                "unknown reranker '{s}'; expected yesno (P(Yes)) or qlik (query likelihood)"
            )),
        }
    }
}

/// Pointwise relevance by a language model.
pub struct LlmReranker<'a> {
    lm: &'a dyn LanguageModel,
    pub kind: RerankKind,
    /// Passages are cut to this many characters (at a word boundary), so a long chunk
    /// cannot push the question out of a small model's attention.
    pub max_passage_chars: usize,
}

impl<'a> LlmReranker<'a> {
    pub fn new(lm: &'a dyn LanguageModel, kind: RerankKind) -> Self {
        Self {
            lm,
            kind,
            max_passage_chars: 1500,
        }
    }

    /// The context the model reads and the continuations it scores.
    pub fn request(&self, query: &str, passage: &str) -> (String, Vec<String>) {
        let passage = truncate_words(passage.trim(), self.max_passage_chars);
        match self.kind {
            RerankKind::YesNo => (
                format!(
                    "Passage: {passage}\n\nQuestion: {}\n\nDoes the passage contain the \
                     answer to the question? Answer Yes or No.\nAnswer:",
                    query.trim()
                ),
                vec![" Yes".into(), " No".into()],
            ),
            RerankKind::QueryLikelihood => (
                format!(
                    "Passage: {passage}\n\nWrite a question that this passage answers.\nQuestion:"
                ),
                vec![format!(" {}", query.trim())],
            ),
        }
    }

    fn relevance(&self, query: &str, passage: &str) -> Result<f32> {
        let (context, continuations) = self.request(query, passage);
        let requests: Vec<LoglikRequest> = continuations
            .into_iter()
            .map(|continuation| LoglikRequest {
                context: context.clone(),
                continuation,
            })
            .collect();
        let s = self.lm.loglik(&requests)?;
        match (self.kind, s.as_slice()) {
            (RerankKind::YesNo, [yes, no]) => Ok(sigmoid(yes.logprob - no.logprob) as f32),
            // Every passage is scored on the same query tokens: the sum ranks as the mean.
            (RerankKind::QueryLikelihood, [q]) => Ok(q.logprob as f32),
            _ => Err(RagError::Other(format!(
                "the reranker's model scored {} choices",
                s.len()
            ))),
        }
    }
}

impl Reranker for LlmReranker<'_> {
    fn scores(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        // One thread per passage: the model batches requests that arrive together.
        std::thread::scope(|s| {
            let handles: Vec<_> = passages
                .iter()
                .map(|p| s.spawn(move || self.relevance(query, p)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RagError::Other("a reranker thread panicked".into()))
                    })
                })
                .collect()
        })
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// At most `max` bytes of `s`, cut at the last whitespace before the limit.
pub fn truncate_words(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s[..end].rfind(char::is_whitespace) {
        Some(i) if i > 0 => &s[..i],
        _ => &s[..end],
    }
}

/// Reorders the first `depth` hits by the reranker's scores (ties keep the first stage's
/// order); hits below `depth` follow in their first-stage order, with scores below every
/// reranked one.
pub fn rerank_hits(
    reranker: &dyn Reranker,
    query: &str,
    hits: Vec<Hit>,
    depth: usize,
    text_of: &dyn Fn(usize) -> String,
) -> Result<Vec<Hit>> {
    let depth = depth.min(hits.len());
    let texts: Vec<String> = hits[..depth].iter().map(|h| text_of(h.row)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores = reranker.scores(query, &refs)?;
    if scores.len() != depth {
        return Err(RagError::Other(format!(
            "the reranker scored {} of {depth} passages",
            scores.len()
        )));
    }
    let mut top: Vec<(usize, Hit)> = hits[..depth]
        .iter()
        .zip(&scores)
        .enumerate()
        .map(|(i, (h, &s))| {
            (
                i,
                Hit {
                    row: h.row,
                    score: s,
                },
            )
        })
        .collect();
    top.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    let floor = scores
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min)
        .min(0.0);
    let mut out: Vec<Hit> = top.into_iter().map(|(_, h)| h).collect();
    out.extend(hits[depth..].iter().enumerate().map(|(i, h)| Hit {
        row: h.row,
        score: floor - 1.0 - i as f32,
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores a passage by how many times it contains the query's first word.
    struct CountReranker;
    impl Reranker for CountReranker {
        fn scores(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
            let w = query.split_whitespace().next().unwrap_or_default();
            Ok(passages
                .iter()
                .map(|p| p.matches(w).count() as f32)
                .collect())
        }
    }

    fn hit(row: usize, score: f32) -> Hit {
        Hit { row, score }
    }

    #[test]
    fn reranks_only_the_top_depth_and_keeps_the_rest_below() {
        let texts = ["x", "cat cat", "cat", "cat cat cat", "cat cat cat cat"];
        let hits: Vec<Hit> = (0..5).map(|r| hit(r, 10.0 - r as f32)).collect();
        let out = rerank_hits(&CountReranker, "cat", hits, 4, &|r| texts[r].to_string()).unwrap();
        let rows: Vec<usize> = out.iter().map(|h| h.row).collect();
        // Rows 0..4 by count (3, 1, 2, 0); row 4 (the most "cat"s) was below the depth.
        assert_eq!(rows, [3, 1, 2, 0, 4]);
        assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn ties_keep_first_stage_order() {
        let hits: Vec<Hit> = (0..3).map(|r| hit(r, 1.0)).collect();
        let out = rerank_hits(&CountReranker, "dog", hits, 3, &|_| "none".into()).unwrap();
        assert_eq!(out.iter().map(|h| h.row).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn truncation_cuts_at_a_word() {
        assert_eq!(truncate_words("alpha beta gamma", 12), "alpha beta");
        assert_eq!(truncate_words("short", 12), "short");
        assert_eq!(truncate_words("ééééé", 3), "é");
    }
}

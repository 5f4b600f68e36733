//! A retrieval pipeline: query rewriting (HyDE, decomposition), first-stage retrieval in
//! one of the modes, then reranking. A variant is written
//! `MODE[+hyde][+decompose][+rerank|+rerank-qlik]` (`hybrid+rerank`, `dense+hyde`): `rerank`
//! by P(Yes), `rerank-qlik` by query likelihood.

use std::str::FromStr;

use kiln_lm::LanguageModel;
use serde::Serialize;

use crate::error::{RagError, Result};
use crate::index::indexed_text;
use crate::rerank::{rerank_hits, RerankKind, Reranker};
use crate::retrieve::{rrf, Hit, Mode, Retriever};
use crate::rewrite::{hypothetical_passage, mean_direction, sub_questions};

/// Chunks a reranker reads by default.
pub const RERANK_DEPTH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineSpec {
    pub mode: Mode,
    pub hyde: bool,
    pub decompose: bool,
    pub rerank: Option<RerankKind>,
}

impl PipelineSpec {
    pub fn plain(mode: Mode) -> Self {
        Self {
            mode,
            hyde: false,
            decompose: false,
            rerank: None,
        }
    }

    /// Refuses combinations that cannot run: HyDE changes only the dense query.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.hyde && self.mode == Mode::Bm25 {
            return Err(
                "HyDE (+hyde, --hyde) changes the dense query; use it with dense, \
                        hybrid, weighted or convex"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether a language model is needed (to rewrite or to rerank).
    pub fn needs_llm(&self) -> bool {
        self.hyde || self.decompose || self.rerank.is_some()
    }
}

impl FromStr for PipelineSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut parts = s.split('+');
        let mode: Mode = parts.next().unwrap_or_default().parse()?;
        let mut spec = Self::plain(mode);
        for p in parts {
            match p {
                "hyde" => spec.hyde = true,
                "decompose" => spec.decompose = true,
                "rerank" => spec.rerank = Some(RerankKind::YesNo),
                "rerank-qlik" => spec.rerank = Some(RerankKind::QueryLikelihood),
                _ => {
                    return Err(format!(
                        "'{s}': unknown step '{p}'; expected MODE[+hyde][+decompose][+rerank|+rerank-qlik]"
                    ))
                }
            }
        }
        spec.check().map_err(|e| format!("'{s}': {e}"))?;
        Ok(spec)
    }
}

/// What a pipeline retrieved, and what its rewriting produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Retrieved {
    #[serde(skip)]
    pub hits: Vec<Hit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypothetical: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_questions: Vec<String>,
}

pub struct Pipeline<'a> {
    pub retriever: Retriever<'a>,
    /// Writes HyDE passages and sub-questions.
    pub llm: Option<&'a dyn LanguageModel>,
    /// The rerankers at hand, by kind.
    pub rerankers: Vec<(RerankKind, Box<dyn Reranker + 'a>)>,
    pub rerank_depth: usize,
}

impl<'a> Pipeline<'a> {
    pub fn new(retriever: Retriever<'a>) -> Self {
        Self {
            retriever,
            llm: None,
            rerankers: vec![],
            rerank_depth: RERANK_DEPTH,
        }
    }

    fn llm(&self, what: &str) -> Result<&'a dyn LanguageModel> {
        self.llm
            .ok_or_else(|| RagError::Other(format!("{what} needs a language model (--llm)")))
    }

    /// The best `k` chunks for `query` under `spec`.
    pub fn search(
        &self,
        query: &str,
        spec: PipelineSpec,
        k: usize,
        filters: &[String],
    ) -> Result<Retrieved> {
        let r = &self.retriever;
        let mut out = Retrieved::default();
        let mut vector = if spec.mode == Mode::Bm25 {
            vec![]
        } else {
            r.embed_query(query)?
        };
        if spec.hyde {
            let passage = hypothetical_passage(self.llm("HyDE")?, query)?;
            if !passage.is_empty() {
                vector = mean_direction(&vector, &r.embed_query(&passage)?);
            }
            out.hypothetical = Some(passage);
        }
        let fetch = if spec.rerank.is_some() {
            k.max(self.rerank_depth)
        } else {
            k
        };
        let mut hits = r.search_with_vector(query, &vector, spec.mode, fetch, filters)?;
        if spec.decompose {
            out.sub_questions = sub_questions(self.llm("decomposition")?, query)?;
            if !out.sub_questions.is_empty() {
                let mut lists = vec![hits];
                for q in &out.sub_questions {
                    lists.push(r.search(q, spec.mode, fetch, filters)?);
                }
                hits = rrf(&lists, fetch);
            }
        }
        if let Some(kind) = spec.rerank {
            let reranker = self
                .rerankers
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, r)| r.as_ref())
                .ok_or_else(|| {
                    RagError::Other("reranking needs a language model (--llm)".into())
                })?;
            let index = r.index;
            hits = rerank_hits(reranker, query, hits, self.rerank_depth, &|row| {
                indexed_text(&index.doc_of(row).title, &index.chunks[row].text)
            })?;
        }
        hits.truncate(k);
        out.hits = hits;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s: PipelineSpec = "hybrid+hyde+rerank".parse().unwrap();
        assert_eq!(s.mode, Mode::Hybrid);
        assert!(s.hyde && s.rerank == Some(RerankKind::YesNo) && !s.decompose);
        let q: PipelineSpec = "dense+rerank-qlik".parse().unwrap();
        assert_eq!(q.rerank, Some(RerankKind::QueryLikelihood));
        assert!(s.needs_llm());
        let w: PipelineSpec = "weighted:0.3+decompose".parse().unwrap();
        assert_eq!(w.mode, Mode::Weighted { alpha: 0.3 });
        assert!(w.decompose);
        assert!(!"dense".parse::<PipelineSpec>().unwrap().needs_llm());
        assert!("bm25+hyde"
            .parse::<PipelineSpec>()
            .unwrap_err()
            .contains("HyDE"));
        assert!("hybrid+magic"
            .parse::<PipelineSpec>()
            .unwrap_err()
            .contains("unknown step 'magic'"));
    }
}

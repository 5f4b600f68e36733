//! `kiln rag ask`: retrieve, number the chunks as sources in a prompt, let the model answer
//! with `[n]` citations, resolve each citation to its document and byte span, and verify
//! every sentence against the sources it cites. A sentence that cites nothing is checked
//! against every source and, when one supports it, attributed to that source (post-hoc
//! attribution), so a small model that forgets to cite still gets checked citations.

use kiln_lm::{user, GenParams, LanguageModel, TextCompletion};
use serde::Serialize;

use crate::error::Result;
use crate::index::{indexed_text, RagIndex};
use crate::pipeline::{Pipeline, PipelineSpec, Retrieved};
use crate::retrieve::Hit;
use crate::verify::{split_sentences, Support, Verifier};

/// A numbered source of the prompt.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub n: usize,
    pub doc_id: String,
    pub chunk_id: String,
    pub title: String,
    pub source: std::path::PathBuf,
    /// The chunk's byte span in its document's text.
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckedSentence {
    pub text: String,
    /// Source numbers the model wrote after it.
    pub citations: Vec<usize>,
    /// Numbers it wrote that are not sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_citations: Vec<usize>,
    /// The source that supports an uncited sentence, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributed: Option<usize>,
    pub support: Support,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    pub answer: String,
    pub sources: Vec<Source>,
    pub sentences: Vec<CheckedSentence>,
    /// Sentences not supported by what they cite (or by any source, when uncited).
    pub unsupported: usize,
    #[serde(flatten)]
    pub retrieval: Retrieved,
}

pub const INSTRUCTION: &str = "Answer the question using only the numbered sources below. \
After each sentence, cite the sources that support it as [1] or [2]. If the sources do not \
answer the question, say so.";

pub fn sources(index: &RagIndex, hits: &[Hit]) -> Vec<Source> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let c = &index.chunks[h.row];
            let d = index.doc_of(h.row);
            Source {
                n: i + 1,
                doc_id: c.doc_id.clone(),
                chunk_id: c.chunk_id.clone(),
                title: d.title.clone(),
                source: d.source.clone(),
                start: c.start,
                end: c.end,
                score: h.score,
                text: c.text.clone(),
            }
        })
        .collect()
}

pub fn prompt(question: &str, sources: &[Source]) -> String {
    let mut p = format!("{INSTRUCTION}\n\n");
    for s in sources {
        p.push_str(&format!(
            "[{}] {}\n\n",
            s.n,
            indexed_text(&s.title, s.text.trim())
        ));
    }
    p.push_str(&format!("Question: {}", question.trim()));
    p
}

/// Checks every sentence of `answer` against `sources`.
pub fn verify_answer(
    verifier: &Verifier,
    answer: &str,
    sources: &[Source],
) -> Result<Vec<CheckedSentence>> {
    let mut out = vec![];
    for s in split_sentences(answer) {
        let (valid, invalid): (Vec<usize>, Vec<usize>) = s
            .citations
            .iter()
            .copied()
            .partition(|n| (1..=sources.len()).contains(n));
        let mut attributed = None;
        let support = if valid.is_empty() {
            // Uncited: the best single source, if any supports it.
            let mut best: Option<(usize, Support)> = None;
            for src in sources {
                let sup = verifier.check(&s.text, &[src.text.as_str()])?;
                let better = best
                    .as_ref()
                    .is_none_or(|(_, b)| (sup.supported, sup.overlap) > (b.supported, b.overlap));
                if better {
                    best = Some((src.n, sup));
                }
            }
            match best {
                Some((n, sup)) => {
                    if sup.supported {
                        attributed = Some(n);
                    }
                    sup
                }
                None => verifier.check(&s.text, &[])?,
            }
        } else {
            let cited: Vec<&str> = valid
                .iter()
                .map(|&n| sources[n - 1].text.as_str())
                .collect();
            verifier.check(&s.text, &cited)?
        };
        out.push(CheckedSentence {
            text: s.text,
            citations: valid,
            invalid_citations: invalid,
            attributed,
            support,
        });
    }
    Ok(out)
}

/// Retrieves `k` sources for `question`, asks `llm`, and verifies the answer.
pub fn ask(
    pipeline: &Pipeline,
    llm: &dyn LanguageModel,
    verifier: &Verifier,
    question: &str,
    spec: PipelineSpec,
    k: usize,
    max_tokens: usize,
) -> Result<Answer> {
    let retrieval = pipeline.search(question, spec, k, &[])?;
    let sources = sources(pipeline.retriever.index, &retrieval.hits);
    let answer = llm
        .chat_text(
            &user(&prompt(question, &sources)),
            &GenParams::greedy(max_tokens),
        )?
        .trim()
        .to_string();
    let sentences = verify_answer(verifier, &answer, &sources)?;
    let unsupported = sentences.iter().filter(|s| !s.support.supported).count();
    Ok(Answer {
        question: question.to_string(),
        answer,
        sources,
        sentences,
        unsupported,
        retrieval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize, text: &str) -> Source {
        Source {
            n,
            doc_id: format!("doc{n}"),
            chunk_id: format!("doc{n}#0"),
            title: format!("Title {n}"),
            source: "corpus.jsonl".into(),
            start: 0,
            end: text.len(),
            score: 1.0,
            text: text.into(),
        }
    }

    #[test]
    fn planted_unsupported_sentence_is_flagged_and_citations_resolve() {
        let srcs = [
            source(
                1,
                "The Eiffel Tower is a wrought-iron tower in Paris, built in 1889.",
            ),
            source(2, "Gustave Eiffel's company designed and built the tower."),
        ];
        let answer = "The Eiffel Tower is a wrought-iron tower in Paris [1]. It was built by \
                      Gustave Eiffel's company [2]. The tower is made of chocolate and was \
                      moved to Rome in 1925 [1]. See also [9].";
        let checked = verify_answer(&Verifier::new(None), answer, &srcs).unwrap();
        let flags: Vec<bool> = checked.iter().map(|c| c.support.supported).collect();
        assert_eq!(flags, [true, true, false, false]);
        assert_eq!(checked[1].citations, [2]);
        assert_eq!(checked[2].support.missing_numbers, ["1925"]);
        assert_eq!(checked[3].invalid_citations, [9]);
    }

    #[test]
    fn uncited_sentences_are_attributed_when_a_source_supports_them() {
        let srcs = [
            source(1, "Sharks are fish."),
            source(2, "The Eiffel Tower stands in Paris and was built in 1889."),
        ];
        let checked = verify_answer(
            &Verifier::new(None),
            "The Eiffel Tower was built in 1889.",
            &srcs,
        )
        .unwrap();
        assert_eq!(checked[0].attributed, Some(2));
        assert!(checked[0].support.supported);
        let none = verify_answer(&Verifier::new(None), "Cats like milk.", &srcs).unwrap();
        assert_eq!(none[0].attributed, None);
        assert!(!none[0].support.supported);
    }

    #[test]
    fn prompt_numbers_sources_with_titles() {
        let p = prompt("Where is it?", &[source(1, "In Paris.")]);
        assert!(p.starts_with(INSTRUCTION));
        assert!(p.contains("[1] Title 1\nIn Paris.\n\nQuestion: Where is it?"));
    }
}

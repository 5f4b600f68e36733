//! kiln's own multiple-choice task format, one question per line:
//!
//! ```json
//! {"id": "q1", "query": "Question: What is 2 + 2?\nAnswer:", "choices": ["3", "4"], "gold": 1}
//! ```
//!
//! Each choice is scored as the continuation `target_delimiter + choice` (a space unless
//! the line says otherwise) of the query. With `num_fewshot` K, K solved examples from a
//! dev file (same format) come first, each `query + delimiter + gold choice`, separated by
//! blank lines, as lm-evaluation-harness builds its few-shot prompts.

use std::path::Path;

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use serde::Deserialize;

use crate::error::Result;
use crate::tasks::mc_item::{LoglikRequest, McItem};
use crate::tasks::olmes::{json_lines, line_error};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McLine {
    #[serde(default)]
    pub id: serde_json::Value,
    pub query: String,
    pub choices: Vec<String>,
    pub gold: usize,
    #[serde(default = "space")]
    pub target_delimiter: String,
}

fn space() -> String {
    " ".into()
}

/// Reads and checks a task file (errors name the file and line).
pub fn read_mc_lines(path: &Path) -> Result<Vec<McLine>> {
    let mut out = vec![];
    let parse = line_error(path);
    for (i, q) in json_lines::<McLine>(
        path,
        "a question {\"id\", \"query\", \"choices\": [...], \"gold\": index}",
    )? {
        let err = |message: String| parse(i + 1, message);
        if q.choices.len() < 2 {
            return Err(err("a question needs at least two choices".into()));
        }
        if q.gold >= q.choices.len() {
            return Err(err(format!(
                "gold {} is not an index into its {} choices",
                q.gold,
                q.choices.len()
            )));
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(parse(0, "no questions".into()));
    }
    Ok(out)
}

/// The questions as scored items, each with `num_fewshot` solved dev examples before it
/// (drawn with a fixed seed per question, never the question itself).
pub fn mc_items(lines: &[McLine], dev: &[McLine], num_fewshot: usize, seed: u64) -> Vec<McItem> {
    lines
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mut prefix = String::new();
            if num_fewshot > 0 {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
                let pool: Vec<&McLine> = dev
                    .iter()
                    .filter(|d| d.query != q.query || d.id != q.id)
                    .collect();
                for d in pool.choose_multiple(&mut rng, num_fewshot) {
                    prefix.push_str(&d.query);
                    prefix.push_str(&d.target_delimiter);
                    prefix.push_str(&d.choices[d.gold]);
                    prefix.push_str("\n\n");
                }
            }
            McItem {
                doc_id: i,
                native_id: q.id.clone(),
                choices: q
                    .choices
                    .iter()
                    .map(|c| LoglikRequest {
                        context: format!("{prefix}{}", q.query),
                        continuation: format!("{}{c}", q.target_delimiter),
                    })
                    .collect(),
                gold: q.gold,
            }
        })
        .collect()
}

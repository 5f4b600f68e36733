//! `kiln eval judge` over a JSONL file of answers to grade. One line per item:
//!
//! - single-answer grading: `{"id", "question", "answer"[, "reference"][, "label": 1-10]}`
//! - pairwise comparison: `{"id", "question", "answer_a", "answer_b"[, "label": "a"|"b"|"tie"]}`
//!
//! Each item's judgment is appended to the per-sample file as it finishes (`--resume`
//! continues), through the same runner as the other tasks. With labels, the judge's
//! agreement with them is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::run::runner::{run_samples, RunOptions, Sample, TaskRun};
use crate::tasks::olmes::{json_lines, line_error};
use crate::tasks::task::{Task, TaskItems};
use kiln_lm::judge::{
    combine, pairwise_prompt, parse_preference, parse_rating, single_prompt, Preference,
};
use kiln_lm::{user, GenParams, LanguageModel, TextCompletion};
use kiln_stats::{summarize, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeMode {
    Single,
    Pairwise,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JudgeItem {
    pub doc_id: usize,
    pub id: Value,
    pub question: String,
    /// One answer (single grading) or two (pairwise).
    pub answers: Vec<String>,
    pub reference: Option<String>,
    pub label: Option<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Rating(f64),
    Preference(Preference),
}

/// A judge file's items.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeFile {
    pub mode: JudgeMode,
    pub source: PathBuf,
    pub items: Vec<JudgeItem>,
}

/// Reads a judge file; the mode follows from its first line's fields.
pub fn read_judge_file(path: &Path) -> Result<JudgeFile> {
    let parse = line_error(path);
    let mut mode = None;
    let mut items = vec![];
    for (i, v) in json_lines::<Value>(path, "JSON")? {
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let this = if v.get("answer_a").is_some() {
            JudgeMode::Pairwise
        } else {
            JudgeMode::Single
        };
        if *mode.get_or_insert(this) != this {
            return Err(parse(
                i + 1,
                "mixes single answers (\"answer\") and pairs (\"answer_a\", \"answer_b\")".into(),
            ));
        }
        let question =
            text("question").ok_or_else(|| parse(i + 1, "no string \"question\"".into()))?;
        let answers = match this {
            JudgeMode::Single => {
                vec![text("answer").ok_or_else(|| parse(i + 1, "no string \"answer\"".into()))?]
            }
            JudgeMode::Pairwise => vec![
                text("answer_a").ok_or_else(|| parse(i + 1, "no string \"answer_a\"".into()))?,
                text("answer_b").ok_or_else(|| parse(i + 1, "no string \"answer_b\"".into()))?,
            ],
        };
        let label = match (&v["label"], this) {
            (Value::Null, _) => None,
            (Value::Number(n), JudgeMode::Single) => match n.as_f64() {
                Some(r) if (1.0..=10.0).contains(&r) => Some(Label::Rating(r)),
                _ => {
                    return Err(parse(
                        i + 1,
                        format!("label {n} is not a rating from 1 to 10"),
                    ))
                }
            },
            (Value::String(s), JudgeMode::Pairwise) => {
                Some(Label::Preference(Preference::parse_label(s).ok_or_else(
                    || parse(i + 1, format!("label {s:?} is not \"a\", \"b\" or \"tie\"")),
                )?))
            }
            (l, _) => {
                return Err(parse(
                    i + 1,
                    format!(
                        "label {l} does not fit: a rating 1-10 for single answers, \
                         \"a\"/\"b\"/\"tie\" for pairs"
                    ),
                ))
            }
        };
        items.push(JudgeItem {
            doc_id: items.len(),
            id: v.get("id").cloned().unwrap_or(Value::Null),
            question,
            answers,
            reference: text("reference"),
            label,
        });
    }
    match mode {
        Some(mode) => Ok(JudgeFile {
            mode,
            source: path.to_path_buf(),
            items,
        }),
        None => Err(parse(0, "no items".into())),
    }
}

/// One item's judgment (a line of the per-sample file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub doc_id: usize,
    pub id: Value,
    /// The judge's replies: one (single) or two (pairwise: A-B order, then B-A).
    pub replies: Vec<String>,
    /// Single: the rating 1-10.
    pub rating: Option<f64>,
    /// Pairwise: the verdict in each order (the second in the original labels) and combined.
    pub orders: Vec<Option<Preference>>,
    pub preference: Option<Preference>,
    pub label: Option<Label>,
    /// The per-item metrics (`rating`; `win_rate_a`, `consistent`), for compare.
    #[serde(flatten)]
    pub scores: BTreeMap<String, f64>,
}

impl Sample for Judgment {
    fn doc_id(&self) -> usize {
        self.doc_id
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        ["rating", "win_rate_a", "consistent"]
            .into_iter()
            .filter_map(|m| Some((m, *self.scores.get(m)?)))
            .collect()
    }
}

pub struct JudgeOptions {
    pub rubric: String,
    pub max_tokens: usize,
}

/// How often the judge agreed with the labels, over the labelled items.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub labelled: usize,
    /// Single: rating equal to the label; pairwise: the combined verdict equal to it.
    pub exact: Summary,
    /// Single only: within one point of the label.
    pub within_one: Option<Summary>,
}

fn judge_one(
    judge: &dyn LanguageModel,
    mode: JudgeMode,
    item: &JudgeItem,
    o: &JudgeOptions,
) -> Result<Judgment> {
    let mut j = Judgment {
        doc_id: item.doc_id,
        id: item.id.clone(),
        replies: vec![],
        rating: None,
        orders: vec![],
        preference: None,
        label: item.label,
        scores: BTreeMap::new(),
    };
    match mode {
        JudgeMode::Single => {
            let prompt = single_prompt(
                &o.rubric,
                &item.question,
                &item.answers[0],
                item.reference.as_deref(),
            );
            let reply = judge.chat_text(&user(&prompt), &GenParams::greedy(o.max_tokens))?;
            // An unreadable reply counts as the lowest rating, and stays visible in the file.
            let rating = parse_rating(&reply).map(f64::from);
            j.rating = rating;
            j.scores.insert("rating".into(), rating.unwrap_or(1.0));
            j.replies.push(reply);
        }
        JudgeMode::Pairwise => {
            let (a, b) = (&item.answers[0], &item.answers[1]);
            let ask =
                |prompt: String| judge.chat_text(&user(&prompt), &GenParams::greedy(o.max_tokens));
            let first = ask(pairwise_prompt(&item.question, a, b))?;
            let second = ask(pairwise_prompt(&item.question, b, a))?;
            let (p1, p2) = (parse_preference(&first), parse_preference(&second));
            // An order without a readable verdict counts as a tie in that order.
            let combined = combine(p1.unwrap_or(Preference::Tie), p2.unwrap_or(Preference::Tie));
            j.orders = vec![p1, p2.map(Preference::swapped)];
            j.preference = Some(combined);
            let win = match combined {
                Preference::A => 1.0,
                Preference::B => 0.0,
                Preference::Tie => 0.5,
            };
            let consistent = p1.is_some() && p1 == p2.map(Preference::swapped);
            j.scores.insert("win_rate_a".into(), win);
            j.scores
                .insert("consistent".into(), f64::from(u8::from(consistent)));
            j.replies = vec![first, second];
        }
    }
    Ok(j)
}

/// Judges every item; returns the run and, when items carry labels, the agreement.
pub fn run_judge(
    model: &dyn LanguageModel,
    file: &JudgeFile,
    samples: &Path,
    opts: &RunOptions,
    judge: &JudgeOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(TaskRun<Judgment>, Option<Agreement>)> {
    let task = Task {
        name: "judge".into(),
        source: file.source.clone(),
        num_fewshot: 0,
        items: TaskItems::Gen(vec![]),
    };
    let run = run_samples(
        &task,
        &file.items,
        |i: &JudgeItem| i.doc_id,
        samples,
        opts,
        progress,
        |item| judge_one(model, file.mode, item, judge),
    )?;
    let labelled: Vec<&Judgment> = run.samples.iter().filter(|j| j.label.is_some()).collect();
    let agreement = (!labelled.is_empty()).then(|| {
        let exact: Vec<f64> = labelled
            .iter()
            .map(|j| {
                let hit = match j.label {
                    Some(Label::Rating(l)) => j.rating == Some(l.round()),
                    Some(Label::Preference(p)) => j.preference == Some(p),
                    None => false,
                };
                f64::from(u8::from(hit))
            })
            .collect();
        let within: Vec<f64> = labelled
            .iter()
            .filter_map(|j| match j.label {
                Some(Label::Rating(l)) => Some(f64::from(u8::from(
                    j.rating.is_some_and(|r| (r - l).abs() <= 1.0),
                ))),
                _ => None,
            })
            .collect();
        Agreement {
            labelled: labelled.len(),
            exact: summarize(&exact, 20240816),
            within_one: (!within.is_empty()).then(|| summarize(&within, 20240816)),
        }
    });
    Ok((run, agreement))
}

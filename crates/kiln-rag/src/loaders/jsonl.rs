//! JSONL documents, `{"id", "title", "text", "meta": {...}}` a line (`title` and `meta`
//! optional; `meta` values are what `--filter key=value` matches); errors name the file
//! and line.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::document::Document;
use crate::error::{RagError, Result};
use crate::loaders::text::read_utf8;

#[derive(Deserialize)]
struct Line {
    id: serde_json::Value,
    #[serde(default)]
    title: String,
    text: String,
    #[serde(default)]
    meta: serde_json::Map<String, serde_json::Value>,
}

pub fn read_jsonl(path: &Path) -> Result<Vec<Document>> {
    let raw = read_utf8(path)?;
    let mut docs = vec![];
    let mut seen = HashSet::new();
    let mut offset = 0u64;
    for (i, line) in raw.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len() as u64;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| RagError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let l: Line = serde_json::from_str(line)
            .map_err(|e| err(format!("expected {{\"id\", \"title\", \"text\"}}: {e}")))?;
        let id = match l.id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => return Err(err(format!("id must be a string or a number, not {other}"))),
        };
        if !seen.insert(id.clone()) {
            return Err(err(format!("id '{id}' appears twice")));
        }
        let meta = l
            .meta
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((k, v.to_string())),
                other => Err(err(format!(
                    "meta '{k}' must be a string, number or bool, not {other}"
                ))),
            })
            .collect::<Result<_>>()?;
        docs.push(Document {
            title: if l.title.is_empty() {
                id.clone()
            } else {
                l.title
            },
            id,
            source: path.to_path_buf(),
            offset: start,
            text: l.text,
            meta,
        });
    }
    Ok(docs)
}

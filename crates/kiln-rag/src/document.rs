//! A document as the loaders give it: an id the results report, a title, where it came
//! from, and its text.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id: a JSONL line's `id`, a dictionary headword, or the file's path.
    pub id: String,
    pub title: String,
    /// The file it was read from.
    pub source: PathBuf,
    /// Where its text starts in that file (bytes; for JSONL the line's start; for a
    /// dictionary, in the uncompressed `.dict`).
    pub offset: u64,
    pub text: String,
    /// `key: value` pairs retrieval can filter on (a JSONL line's `meta` object).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

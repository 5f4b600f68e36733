//! Records to training examples under a length limit, with an account of what the limit
//! cost: truncated examples keep their start and are counted; an example left with no
//! trained token (truncated before its reply, or with no assistant turn) is dropped, counted
//! and its line listed. Nothing disappears without a number in the [`DataReport`].

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::SftRecord;
use super::tokenize::{SftTokenizer, TokenizedExample};
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataReport {
    /// Examples kept for training.
    pub examples: usize,
    /// Kept examples that were cut to `max_len`.
    pub truncated: usize,
    /// Examples with no trained token after truncation (not kept).
    pub dropped_no_trainable_tokens: usize,
    /// The JSONL lines of the dropped examples.
    pub dropped_lines: Vec<usize>,
    /// Tokens of the kept examples, after truncation.
    pub total_tokens: usize,
    /// Of those, tokens that count in the loss.
    pub trained_tokens: usize,
    /// The longest example before truncation, to help choose `max_len`.
    pub longest: usize,
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} examples, {} tokens ({} trained); {} truncated, {} dropped with no trained token",
            self.examples,
            self.total_tokens,
            self.trained_tokens,
            self.truncated,
            self.dropped_no_trainable_tokens
        )?;
        if !self.dropped_lines.is_empty() {
            let shown: Vec<String> = self
                .dropped_lines
                .iter()
                .take(10)
                .map(|l| l.to_string())
                .collect();
            let more = if self.dropped_lines.len() > 10 {
                ", ..."
            } else {
                ""
            };
            write!(f, " (lines {}{more})", shown.join(", "))?;
        }
        write!(f, "; longest {} tokens", self.longest)
    }
}

/// Tokenizes `records` (read from `path`) and applies `max_len`.
pub fn prepare_examples(
    records: &[SftRecord],
    tokenizer: &SftTokenizer<'_>,
    max_len: usize,
    path: &Path,
) -> Result<(Vec<TokenizedExample>, DataReport)> {
    // One token can be input but never a target; two is the least that trains anything.
    if max_len < 2 {
        return Err(TrainError::InvalidArgument(format!(
            "max_len must be at least 2, got {max_len}"
        )));
    }
    let mut report = DataReport::default();
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        let mut ex = tokenizer.tokenize(record, path)?;
        report.longest = report.longest.max(ex.len());
        let truncated = ex.len() > max_len;
        if truncated {
            ex.input_ids.truncate(max_len);
            ex.loss_mask.truncate(max_len);
        }
        let trained = ex.trained_tokens();
        if trained == 0 {
            report.dropped_no_trainable_tokens += 1;
            report.dropped_lines.push(record.line);
            continue;
        }
        report.truncated += usize::from(truncated);
        report.examples += 1;
        report.total_tokens += ex.len();
        report.trained_tokens += trained;
        kept.push(ex);
    }
    Ok((kept, report))
}

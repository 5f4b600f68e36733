//! Examples to token ids plus a loss mask. `loss_mask[j]` says whether predicting
//! `input_ids[j]` (from `input_ids[..j]`) counts in the loss; position 0 never does, since
//! nothing precedes it. Text is tokenized in pieces cut at the mask boundaries, so a
//! boundary can never fall inside a token.

use std::path::Path;

use kiln_model::{ChatTemplate, Tokenizer};
use serde::{Deserialize, Serialize};

use super::chat_mask::assistant_spans;
use super::record::{SftExample, SftRecord};
use crate::error::{Result, TrainError};

/// Which tokens are trained. `Assistant`: assistant turns of chats and completions of
/// prompt/completion pairs; `All`: every token. Plain `{"text"}` examples train on all
/// their tokens either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainOn {
    #[default]
    Assistant,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    pub input_ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
    /// The JSONL line it came from.
    pub line: usize,
}

impl TokenizedExample {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    pub fn trained_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }

    /// Hugging Face's `labels`: the token where it is trained, -100 elsewhere.
    pub fn labels(&self) -> Vec<i64> {
        labels_of(&self.input_ids, &self.loss_mask)
    }
}

pub(crate) fn labels_of(ids: &[u32], mask: &[bool]) -> Vec<i64> {
    ids.iter()
        .zip(mask)
        .map(|(&id, &m)| if m { i64::from(id) } else { -100 })
        .collect()
}

/// The model's tokenizer and chat template, applied the way the model was trained.
pub struct SftTokenizer<'a> {
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
    train_on: TrainOn,
}

impl<'a> SftTokenizer<'a> {
    pub fn new(
        tokenizer: &'a Tokenizer,
        template: Option<&'a ChatTemplate>,
        train_on: TrainOn,
    ) -> Self {
        Self {
            tokenizer,
            template,
            train_on,
        }
    }

    /// Tokens that end a turn or a text (the model's end-of-sequence ids).
    pub fn end_of_turn_ids(&self) -> &[u32] {
        self.tokenizer.eos_token_ids()
    }

    /// Tokenizes one record; `path` is the file it came from, for error messages.
    pub fn tokenize(&self, record: &SftRecord, path: &Path) -> Result<TokenizedExample> {
        let at_line = |msg: String| TrainError::DataLine {
            path: path.into(),
            line: record.line,
            msg,
        };
        let all = self.train_on == TrainOn::All;
        // (text, trained) pieces in order, and whether the example ends with EOS.
        let (pieces, end_with_eos): (Vec<(&str, bool)>, bool) = match &record.example {
            SftExample::Chat(messages) => {
                let template = self.template.ok_or_else(|| {
                    at_line("a chat example needs a chat template, and the model has none".into())
                })?;
                let (full, spans) = assistant_spans(template, messages).map_err(at_line)?;
                let pieces = split_at_spans(&full, &spans, all);
                return self.finish(pieces, false, record.line).map_err(at_line);
            }
            SftExample::PromptCompletion { prompt, completion } => (
                vec![(prompt.as_str(), all), (completion.as_str(), true)],
                true,
            ),
            SftExample::Text(text) => (vec![(text.as_str(), true)], true),
        };
        self.finish(pieces, end_with_eos, record.line)
            .map_err(at_line)
    }

    fn finish(
        &self,
        pieces: Vec<(&str, bool)>,
        end_with_eos: bool,
        line: usize,
    ) -> std::result::Result<TokenizedExample, String> {
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for (text, trained) in pieces {
            if text.is_empty() {
                continue;
            }
            let piece = self
                .tokenizer
                .encode(text, false, true)
                .map_err(|e| e.to_string())?;
            mask.extend(std::iter::repeat_n(trained, piece.len()));
            ids.extend(piece);
        }
        // Templates that write `{{ bos_token }}` already start with it.
        if let Some(bos) = self
            .tokenizer
            .bos_token_id()
            .filter(|_| self.tokenizer.add_bos())
        {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
                mask.insert(0, false);
            }
        }
        if end_with_eos {
            let eos = self.tokenizer.eos_token_ids().first().copied().ok_or(
                "the tokenizer has no end-of-sequence token to end prompt/completion and text examples with",
            )?;
            // Ending is part of the completion (or text), even an empty one.
            ids.push(eos);
            mask.push(true);
        }
        if let Some(first) = mask.first_mut() {
            *first = false;
        }
        Ok(TokenizedExample {
            input_ids: ids,
            loss_mask: mask,
            line,
        })
    }
}

/// `full` cut at the span boundaries: spans trained, the rest trained only with `all`.
fn split_at_spans<'t>(
    full: &'t str,
    spans: &[std::ops::Range<usize>],
    all: bool,
) -> Vec<(&'t str, bool)> {
    let mut pieces = Vec::with_capacity(2 * spans.len() + 1);
    let mut at = 0;
    for s in spans {
        pieces.push((&full[at..s.start], all));
        pieces.push((&full[s.clone()], true));
        at = s.end;
    }
    pieces.push((&full[at..], all));
    pieces
}

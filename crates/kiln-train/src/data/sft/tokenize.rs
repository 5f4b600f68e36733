//! Examples to token ids plus a loss mask. `loss_mask[j]` says whether predicting
//! `input_ids[j]` (from `input_ids[..j]`) counts in the loss; position 0 never does, since
//! nothing precedes it. Text is tokenized in pieces cut at the mask boundaries, so a
//! boundary can never fall inside a token.

use std::path::Path;

use kiln_model::{ChatPrompt, Tokenizer};
use serde::{Deserialize, Serialize};

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

/// The model's tokenizer and chat prompt, applied the way the model is prompted.
pub struct SftTokenizer<'a> {
    tokenizer: &'a Tokenizer,
    chat: &'a ChatPrompt,
    train_on: TrainOn,
}

impl<'a> SftTokenizer<'a> {
    pub fn new(tokenizer: &'a Tokenizer, chat: &'a ChatPrompt, train_on: TrainOn) -> Self {
        Self {
            tokenizer,
            chat,
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
                if !self.chat.is_chat() {
                    return Err(at_line(
                        "a chat example needs a chat template, and the model has none".into(),
                    ));
                }
                let (ids, assistant) = self
                    .chat
                    .encode_turns(self.tokenizer, messages)
                    .map_err(|e| at_line(e.to_string()))?;
                let mask = assistant.iter().map(|&a| a || all).collect();
                return Ok(finish(ids, mask, record.line));
            }
            SftExample::PromptCompletion { prompt, completion } => (
                vec![(prompt.as_str(), all), (completion.as_str(), true)],
                true,
            ),
            SftExample::Text(text) => (vec![(text.as_str(), true)], true),
        };
        self.encode_pieces(pieces, end_with_eos, record.line)
            .map_err(at_line)
    }

    /// Prompt/completion and text examples: pieces tokenized in turn, BOS where the model
    /// wants one, and EOS to end them.
    fn encode_pieces(
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
        if self.tokenizer.ensure_bos(&mut ids) {
            mask.insert(0, false);
        }
        if end_with_eos {
            let eos = self.tokenizer.eos_token_ids().first().copied().ok_or(
                "the tokenizer has no end-of-sequence token to end prompt/completion and text examples with",
            )?;
            // Ending is part of the completion (or text), even an empty one.
            ids.push(eos);
            mask.push(true);
        }
        Ok(finish(ids, mask, line))
    }
}

/// The example, with position 0 never trained (nothing precedes it).
fn finish(input_ids: Vec<u32>, mut loss_mask: Vec<bool>, line: usize) -> TokenizedExample {
    if let Some(first) = loss_mask.first_mut() {
        *first = false;
    }
    TokenizedExample {
        input_ids,
        loss_mask,
        line,
    }
}

//! Incremental detokenization: emits text only once it is complete UTF-8, so a character
//! split across byte-level tokens is never printed half-way.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Default, Clone)]
pub struct TokenStreamDecoder {
    ids: Vec<u32>,
    /// Start of the window re-decoded for context (spacing depends on the previous token).
    prefix_offset: usize,
    /// Tokens before this index have been emitted.
    read_offset: usize,
}

impl TokenStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token and returns the text it completes, if any.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = tok.decode(&self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let text = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(Some(text))
        } else {
            Ok(None)
        }
    }

    /// Text still held back at the end of generation (e.g. an incomplete character).
    pub fn flush(&mut self, tok: &Tokenizer) -> Result<Option<String>> {
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = tok.decode(&self.ids[self.prefix_offset..])?;
        self.read_offset = self.ids.len();
        Ok(full
            .get(prefix.len()..)
            .filter(|rest| !rest.is_empty())
            .map(str::to_string))
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

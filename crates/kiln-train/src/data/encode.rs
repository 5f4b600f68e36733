//! Encoding large texts in pieces without changing the ids.
//!
//! `tokenizers` keeps offsets and token strings for every token of an `Encoding`, about 100
//! bytes a token, so a whole large file at once costs gigabytes and runs on one core. We cut
//! the text into pieces and encode them as a batch (in parallel), but only where a cut
//! provably cannot change the result: after a newline that sits between two non-whitespace
//! characters. Under the GPT-2 and Llama-3 pre-tokenizer regexes such a `\n` is always a
//! pre-token of its own (or ends a punctuation pre-token) and the next character starts a
//! fresh pre-token, so the pieces' ids concatenate to the whole text's ids. The character
//! tokenizer splits every character, so any cut is safe for it. Tokenizers we cannot vouch
//! for (normalizers, prefix spaces, SentencePiece's `▁` prepending, added tokens that strip
//! whitespace) are encoded whole.

use std::path::Path;

use tokenizers::{PreTokenizerWrapper, Tokenizer};

use crate::data::char_tokenizer::CHAR_SPLIT_PATTERN;
use crate::error::{Result, TrainError};

/// Bytes per piece: small enough to bound memory, large enough that per-call overhead is
/// noise.
pub const CHUNK_BYTES: usize = 256 << 10;
/// Pieces per `encode_batch` call (and per progress report).
const CHUNKS_PER_BATCH: usize = 16;

/// Splits `text` into pieces of about `target_bytes` at safe cuts (see the module docs). The
/// pieces concatenate to `text`; a text without a safe cut stays one piece.
pub fn safe_chunks(text: &str, target_bytes: usize) -> Vec<&str> {
    let mut out = vec![];
    let mut start = 0;
    while text.len() - start > target_bytes {
        match next_safe_cut(text, start + target_bytes.max(1)) {
            Some(cut) => {
                out.push(&text[start..cut]);
                start = cut;
            }
            None => break,
        }
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

/// The first cut at or after `from`: just past a `\n` whose neighbours are not whitespace.
/// Searches bytes (`\n` never occurs inside a multi-byte UTF-8 sequence, so `from` need not
/// be a char boundary) and judges the neighbours as chars (Unicode spaces count as spaces).
fn next_safe_cut(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(off) = bytes.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let before = text[..nl].chars().next_back();
        let after = text[nl + 1..].chars().next();
        match (before, after) {
            (Some(b), Some(a)) if !b.is_whitespace() && !a.is_whitespace() => return Some(nl + 1),
            _ => i = nl + 1,
        }
    }
    None
}

/// Whether cutting at [`safe_chunks`] boundaries gives the same ids as encoding whole.
pub fn chunkable(tok: &Tokenizer) -> bool {
    if tok.get_normalizer().is_some() {
        return false;
    }
    let added_ok = tok
        .get_added_tokens_decoder()
        .values()
        .all(|t| !t.content.contains('\n') && !t.lstrip && !t.rstrip);
    let pre_ok = match tok.get_pre_tokenizer() {
        Some(PreTokenizerWrapper::ByteLevel(b)) => b.use_regex && !b.add_prefix_space,
        Some(PreTokenizerWrapper::Split(s)) => {
            matches!(&s.pattern, tokenizers::pre_tokenizers::split::SplitPattern::Regex(r) if r == CHAR_SPLIT_PATTERN)
        }
        _ => false,
    };
    added_ok && pre_ok
}

/// Encodes `text` (from `path`, for messages) without adding special tokens, in pieces when
/// that is exact. `progress` gets the bytes encoded so far.
pub fn encode_text(
    tok: &Tokenizer,
    text: &str,
    path: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<u32>> {
    encode_text_in_chunks(tok, text, path, CHUNK_BYTES, progress)
}

/// [`encode_text`] with pieces of about `chunk_bytes` (tests use tiny ones to prove the
/// pieces do not change the ids).
pub fn encode_text_in_chunks(
    tok: &Tokenizer,
    text: &str,
    path: &Path,
    chunk_bytes: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<u32>> {
    let pieces = if chunkable(tok) {
        safe_chunks(text, chunk_bytes)
    } else {
        vec![text]
    };
    let mut ids = Vec::with_capacity(text.len() / 3);
    let mut done = 0;
    for batch in pieces.chunks(CHUNKS_PER_BATCH) {
        let encodings = tok
            .encode_batch_fast(batch.to_vec(), false)
            .map_err(|e| encode_error(tok, text, path, e))?;
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
        }
        done += batch.iter().map(|p| p.len()).sum::<usize>();
        progress(done);
    }
    Ok(ids)
}

/// A character tokenizer fails on characters outside its vocabulary; say which and where,
/// which the raw `tokenizers` message ("Missing [UNK] token") does not.
fn encode_error(tok: &Tokenizer, text: &str, path: &Path, e: impl std::fmt::Display) -> TrainError {
    if matches!(tok.get_pre_tokenizer(), Some(PreTokenizerWrapper::Split(_))) {
        let mut buf = [0u8; 4];
        if let Some((offset, ch)) = text
            .char_indices()
            .find(|(_, c)| tok.token_to_id(c.encode_utf8(&mut buf)).is_none())
        {
            return TrainError::UnknownChar {
                path: path.into(),
                offset,
                ch,
            };
        }
    }
    TrainError::tokenizer(format!("encoding {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_and_cut_only_at_safe_newlines() {
        let text = "ab\ncd  \nef\n\ngh\n x\ny\n日本\n語";
        for target in 0..text.len() + 2 {
            let pieces = safe_chunks(text, target);
            assert_eq!(pieces.concat(), text, "target {target}");
            for p in &pieces[..pieces.len() - 1] {
                let before = p.trim_end_matches('\n');
                assert!(p.ends_with('\n'), "{p:?}");
                assert!(!before.ends_with(char::is_whitespace), "{p:?}");
            }
            for p in &pieces[1..] {
                assert!(!p.starts_with(char::is_whitespace), "{p:?}");
            }
        }
        assert_eq!(safe_chunks("", 4), vec![""]);
        assert_eq!(
            safe_chunks("no newline at all", 2),
            vec!["no newline at all"]
        );
    }
}

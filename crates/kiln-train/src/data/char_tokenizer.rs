//! The character-level tokenizer of nanoGPT's `shakespeare_char`: the vocabulary is the
//! sorted set of characters in the corpus (id = rank by code point, as Python's
//! `sorted(set(text))`), special tokens follow.
//!
//! It is saved as an ordinary Hugging Face `tokenizer.json` so everything that reads
//! tokenizers (kiln, transformers) reads it: a `WordLevel` model over single characters, a
//! `Split` pre-tokenizer whose regex matches exactly one character (so every character is
//! its own word, newlines included), no normalizer (it would change the text), and a `Fuse`
//! decoder (without one, `tokenizers` joins tokens with spaces). Decoding is therefore the
//! exact inverse of encoding. A character outside the vocabulary is an encoding error, as
//! in nanoGPT, rather than a silent `<unk>`.

use std::collections::BTreeSet;

use serde_json::json;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::data::tokenizer_train::check_special_tokens;
use crate::error::{Result, TrainError};

/// One character, newlines included (Oniguruma's `.` does not match `\n`).
pub const CHAR_SPLIT_PATTERN: &str = r"[\s\S]";
/// The `WordLevel` model must name an unknown token; it is deliberately not in the
/// vocabulary, so unknown characters fail loudly.
const UNK: &str = "<unk>";

/// A character vocabulary plus special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    special_tokens: Vec<String>,
}

impl CharTokenizer {
    /// The sorted set of characters in `texts`, then `special_tokens` in order.
    pub fn from_texts<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        special_tokens: &[String],
    ) -> Result<Self> {
        let chars: BTreeSet<char> = texts.into_iter().flat_map(str::chars).collect();
        check_special_tokens(special_tokens)?;
        for s in special_tokens {
            let mut it = s.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                if chars.contains(&c) {
                    return Err(TrainError::InvalidSpecialToken {
                        token: s.clone(),
                        why: "it is a character of the corpus; a special token must not shadow one"
                            .into(),
                    });
                }
            }
        }
        Ok(Self {
            chars: chars.into_iter().collect(),
            special_tokens: special_tokens.to_vec(),
        })
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn special_tokens(&self) -> &[String] {
        &self.special_tokens
    }

    /// Characters plus special tokens.
    pub fn vocab_size(&self) -> usize {
        self.chars.len() + self.special_tokens.len()
    }

    /// The Hugging Face tokenizer (see the module docs for its parts).
    pub fn to_tokenizer(&self) -> Result<Tokenizer> {
        let vocab: serde_json::Map<String, serde_json::Value> = self
            .chars
            .iter()
            .enumerate()
            .map(|(id, c)| (c.to_string(), json!(id)))
            .collect();
        // `WordLevel`'s builder wants the `ahash` map type; its serde form is public API.
        // (From a string: its deserializer borrows, which `from_value` cannot.)
        let model_json = json!({"type": "WordLevel", "vocab": vocab, "unk_token": UNK});
        let model: WordLevel = serde_json::from_str(&model_json.to_string())
            .map_err(|e| TrainError::tokenizer("building the char model", e))?;
        let split = Split::new(
            SplitPattern::Regex(CHAR_SPLIT_PATTERN.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TrainError::tokenizer("building the char pre-tokenizer", e))?;
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(split));
        tok.with_decoder(Some(Fuse::new()));
        let specials = self
            .special_tokens
            .iter()
            .map(|s| AddedToken::from(s.clone(), true));
        tok.add_special_tokens(specials)
            .map_err(|e| TrainError::tokenizer("adding special tokens", e))?;
        Ok(tok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, specials: &[&str]) -> (CharTokenizer, Tokenizer) {
        let specials: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
        let c = CharTokenizer::from_texts([text], &specials).unwrap();
        let t = c.to_tokenizer().unwrap();
        (c, t)
    }

    #[test]
    fn vocab_is_the_sorted_char_set_then_specials() {
        let text = "hello, World!\n\tünïcode 日本 🦀 \r\n";
        let (c, t) = tok(text, &["<|endoftext|>"]);
        let mut expected: Vec<char> = text.chars().collect();
        expected.sort();
        expected.dedup();
        assert_eq!(c.chars(), expected.as_slice());
        for (id, ch) in expected.iter().enumerate() {
            assert_eq!(t.token_to_id(&ch.to_string()), Some(id as u32), "{ch:?}");
        }
        assert_eq!(t.token_to_id("<|endoftext|>"), Some(expected.len() as u32));
        assert_eq!(t.get_vocab_size(true), expected.len() + 1);
    }

    #[test]
    fn round_trips_exactly_one_id_per_char() {
        let text = "  First Citizen:\n\nBefore we proceed   any further, hear me speak.\t\n 日本語 🦀👍🏽\r\n";
        let (c, t) = tok(text, &["<|endoftext|>"]);
        let enc = t.encode(text, false).unwrap();
        assert_eq!(enc.get_ids().len(), text.chars().count());
        let expected: Vec<u32> = text
            .chars()
            .map(|ch| c.chars().binary_search(&ch).unwrap() as u32)
            .collect();
        assert_eq!(enc.get_ids(), expected.as_slice());
        assert_eq!(t.decode(enc.get_ids(), false).unwrap(), text);
        // A special token in the text is one id and decodes back to itself.
        let with_eot = format!("{text}<|endoftext|>{text}");
        let ids = t
            .encode(with_eot.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ids.len(), 2 * text.chars().count() + 1);
        assert_eq!(t.decode(&ids, false).unwrap(), with_eot);
    }

    #[test]
    fn unknown_char_fails_instead_of_guessing() {
        let (_, t) = tok("abc", &[]);
        assert!(t.encode("abz", false).is_err());
    }

    #[test]
    fn special_token_may_not_shadow_a_char() {
        let e = CharTokenizer::from_texts(["a|b"], &["|".to_string()]).unwrap_err();
        assert!(matches!(e, TrainError::InvalidSpecialToken { .. }), "{e}");
    }
}

//! Training a tokenizer on a corpus: byte-level BPE (GPT-2's scheme, via the `tokenizers`
//! crate) or the character tokenizer of [`crate::data::char_tokenizer`]. Either way the result is
//! a Hugging Face `tokenizer.json`.
//!
//! The BPE tokenizer has no normalizer and no prefix space, and its base vocabulary is all
//! 256 bytes, so every string encodes (no `<unk>`) and decodes back byte for byte.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Decoder, Tokenizer};

use crate::data::char_tokenizer::CharTokenizer;
use crate::data::corpus::read_corpus;
use crate::data::encode::safe_chunks;
use crate::error::{Result, TrainError};
use kiln_model::atomic::write_bytes_atomic;

/// GPT-2's end-of-text token, the default special token of BPE tokenizers.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// Byte-level BPE starts from one token per byte.
pub const BYTE_ALPHABET: usize = 256;
/// Pieces fed to the BPE trainer; cut as [`crate::data::encode`] cuts, so the trainer sees the same
/// pre-tokens that encoding the whole text produces.
const TRAIN_PIECE_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE.
    Bpe,
    /// One token per character of the corpus.
    Char,
}

impl TokenizerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bpe => "byte-level BPE",
            Self::Char => "character",
        }
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TokenizerSpec {
    pub kind: TokenizerKind,
    /// BPE: the vocabulary size to reach, special tokens included (the corpus may run out of
    /// pairs first). Char: an upper bound, or `None` for whatever the corpus has.
    pub vocab_size: Option<usize>,
    pub special_tokens: Vec<String>,
    /// BPE: pairs seen fewer times than this are never merged.
    pub min_frequency: u64,
}

impl TokenizerSpec {
    /// Byte-level BPE with `<|endoftext|>`.
    pub fn bpe(vocab_size: usize) -> Self {
        Self {
            kind: TokenizerKind::Bpe,
            vocab_size: Some(vocab_size),
            special_tokens: vec![ENDOFTEXT.to_string()],
            min_frequency: 0,
        }
    }

    /// Characters only, as nanoGPT's `shakespeare_char` (no special tokens).
    pub fn char() -> Self {
        Self {
            kind: TokenizerKind::Char,
            vocab_size: None,
            special_tokens: vec![],
            min_frequency: 0,
        }
    }
}

/// A trained tokenizer and what went into it.
pub struct TrainedTokenizer {
    pub tokenizer: Tokenizer,
    pub kind: TokenizerKind,
    /// Ids in use: the model's vocabulary plus special tokens.
    pub vocab_size: usize,
    pub corpus_bytes: u64,
    pub files: usize,
}

/// Reads `inputs` (UTF-8) and trains on them.
pub fn train_tokenizer(spec: &TokenizerSpec, inputs: &[PathBuf]) -> Result<TrainedTokenizer> {
    let corpus = read_corpus(inputs)?;
    let texts: Vec<&str> = corpus.iter().map(|s| s.text.as_str()).collect();
    let tokenizer = train_on_texts(spec, &texts)?;
    Ok(TrainedTokenizer {
        vocab_size: vocab_size(&tokenizer),
        tokenizer,
        kind: spec.kind,
        corpus_bytes: texts.iter().map(|t| t.len() as u64).sum(),
        files: inputs.len(),
    })
}

/// Trains on in-memory texts (each a document; BPE merges never cross them).
pub fn train_on_texts(spec: &TokenizerSpec, texts: &[&str]) -> Result<Tokenizer> {
    match spec.kind {
        TokenizerKind::Bpe => {
            let n = spec.vocab_size.ok_or_else(|| {
                TrainError::InvalidArgument("a BPE tokenizer needs a vocab_size".into())
            })?;
            train_bpe(texts, n, &spec.special_tokens, spec.min_frequency)
        }
        TokenizerKind::Char => {
            let c = CharTokenizer::from_texts(texts.iter().copied(), &spec.special_tokens)?;
            if let Some(n) = spec.vocab_size.filter(|&n| c.vocab_size() > n) {
                return Err(TrainError::VocabSizeTooSmall {
                    requested: n,
                    why: format!(
                        "the corpus has {} distinct characters and there are {} special tokens",
                        c.chars().len(),
                        c.special_tokens().len()
                    ),
                });
            }
            c.to_tokenizer()
        }
    }
}

/// Byte-level BPE with `vocab_size` tokens at most: 256 byte tokens, the special tokens
/// (ids 0.., before the bytes), then merges learned from `texts`.
pub fn train_bpe(
    texts: &[&str],
    vocab_size: usize,
    special_tokens: &[String],
    min_frequency: u64,
) -> Result<Tokenizer> {
    check_special_tokens(special_tokens)?;
    let min = BYTE_ALPHABET + special_tokens.len();
    if vocab_size < min {
        return Err(TrainError::VocabSizeTooSmall {
            requested: vocab_size,
            why: format!(
                "byte-level BPE needs at least {min} ({BYTE_ALPHABET} bytes + {} special tokens)",
                special_tokens.len()
            ),
        });
    }
    // add_prefix_space = false: a prefix space would not survive decoding.
    let byte_level = ByteLevel::new(false, false, true);
    for s in special_tokens {
        check_byte_level_special(s)?;
    }
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(byte_level));
    tok.with_decoder(Some(byte_level));
    tok.with_post_processor(Some(byte_level));
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(
            special_tokens
                .iter()
                .map(|s| AddedToken::from(s.clone(), true))
                .collect(),
        )
        // All 256 bytes, seen or not, so any text encodes.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let pieces = texts
        .iter()
        .flat_map(|t| safe_chunks(t, TRAIN_PIECE_BYTES))
        .filter(|p| !p.is_empty());
    tok.train(&mut trainer, pieces)
        .map_err(|e| TrainError::tokenizer("training BPE", e))?;
    Ok(tok)
}

/// Rules every special token follows: non-empty and listed once.
pub(crate) fn check_special_tokens(tokens: &[String]) -> Result<()> {
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(TrainError::InvalidSpecialToken {
                token: t.clone(),
                why: "it is empty".into(),
            });
        }
        if tokens[..i].contains(t) {
            return Err(TrainError::InvalidSpecialToken {
                token: t.clone(),
                why: "it is listed twice".into(),
            });
        }
    }
    Ok(())
}

/// The byte-level decoder maps each character of a token through GPT-2's byte table, so a
/// special token like `<|café|>` would decode to mojibake. Ask the decoder itself.
fn check_byte_level_special(token: &str) -> Result<()> {
    let decoded = ByteLevel::default()
        .decode(vec![token.to_string()])
        .map_err(|e| TrainError::tokenizer("checking special tokens", e))?;
    if decoded != token {
        return Err(TrainError::InvalidSpecialToken {
            token: token.into(),
            why: format!("byte-level decoding would turn it into {decoded:?}; use printable ASCII"),
        });
    }
    Ok(())
}

/// Ids in use: one more than the largest id of the model or the added tokens.
pub fn vocab_size(tok: &Tokenizer) -> usize {
    tok.get_vocab(true)
        .values()
        .max()
        .map_or(0, |&m| m as usize + 1)
}

/// Writes `tokenizer.json` atomically (pretty, as the Hub's files are).
pub fn save_tokenizer(tok: &Tokenizer, path: &Path) -> Result<()> {
    let json = tok
        .to_string(true)
        .map_err(|e| TrainError::tokenizer("serializing", e))?;
    Ok(write_bytes_atomic(path, json.as_bytes())?)
}

/// Loads a `tokenizer.json`, naming the file on failure.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, "read", e))?;
    Tokenizer::from_bytes(&bytes)
        .map_err(|e| TrainError::tokenizer(format!("loading {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
        All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";
    /// Unicode, whitespace runs (spaces, tabs, newlines, CRLF, trailing), digits, a special
    /// token written in the text.
    const TRICKY: &[&str] = &[
        "Ünïcödé: naïve café, 日本語のテキスト, Привет мир, emoji 🦀🔥👍🏽 ½ ∑ ∞ — «quotes»",
        "a  b   c\t\td\n\n\ne \t \n  \n\t\tf    \n\n\n\n   ",
        "   leading and trailing   ",
        "line\r\nwindows\r\n\r\n",
        "3.14159 2025-11-23 0x1F <|endoftext|> I've 'RE",
        "",
    ];

    fn bpe(vocab: usize) -> Tokenizer {
        let texts = vec![TEXT; 20];
        train_bpe(&texts, vocab, &[ENDOFTEXT.into(), "<|pad|>".into()], 0).unwrap()
    }

    #[test]
    fn bpe_round_trips_any_text_through_a_saved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        save_tokenizer(&bpe(300), &path).unwrap();
        let tok = Tokenizer::from_file(&path).unwrap();
        assert_eq!(tok.get_vocab_size(true), 300);
        assert_eq!(tok.token_to_id(ENDOFTEXT), Some(0));
        assert_eq!(tok.token_to_id("<|pad|>"), Some(1));
        for text in TRICKY.iter().chain([&TEXT]) {
            let ids = tok.encode(*text, false).unwrap().get_ids().to_vec();
            assert_eq!(tok.decode(&ids, false).unwrap(), *text, "{ids:?}");
        }
        let ids = tok.encode(TRICKY[4], false).unwrap().get_ids().to_vec();
        assert!(ids.contains(&0), "<|endoftext|> is one token: {ids:?}");
        // Merges were learned: the training text compresses.
        let n = tok.encode(TEXT, false).unwrap().get_ids().len();
        assert!(n < TEXT.len() / 2, "{n} tokens for {} bytes", TEXT.len());
    }

    #[test]
    fn bpe_training_is_deterministic() {
        let a = bpe(290).to_string(false).unwrap();
        let b = bpe(290).to_string(false).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bpe_vocab_below_the_byte_alphabet_is_an_error() {
        let e = train_bpe(&[TEXT], 257, &[ENDOFTEXT.into(), "<|x|>".into()], 0).unwrap_err();
        assert!(matches!(e, TrainError::VocabSizeTooSmall { .. }), "{e}");
        assert!(e.to_string().contains("258"), "{e}");
    }

    #[test]
    fn bpe_rejects_special_tokens_that_would_not_decode() {
        let e = train_bpe(&[TEXT], 300, &["<|café|>".into()], 0).unwrap_err();
        assert!(matches!(e, TrainError::InvalidSpecialToken { .. }), "{e}");
        let e = train_bpe(&[TEXT], 300, &["".into()], 0).unwrap_err();
        assert!(matches!(e, TrainError::InvalidSpecialToken { .. }), "{e}");
        let e = train_bpe(&[TEXT], 300, &["<a>".into(), "<a>".into()], 0).unwrap_err();
        assert!(matches!(e, TrainError::InvalidSpecialToken { .. }), "{e}");
    }

    #[test]
    fn char_kind_round_trips_through_a_saved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let texts: Vec<&str> = TRICKY.iter().copied().chain([TEXT]).collect();
        let spec = TokenizerSpec {
            special_tokens: vec![ENDOFTEXT.into()],
            ..TokenizerSpec::char()
        };
        save_tokenizer(&train_on_texts(&spec, &texts).unwrap(), &path).unwrap();
        let tok = load_tokenizer(&path).unwrap();
        for text in &texts {
            let ids = tok.encode(*text, false).unwrap().get_ids().to_vec();
            assert_eq!(tok.decode(&ids, false).unwrap(), *text);
        }
    }

    #[test]
    fn char_kind_respects_a_vocab_cap() {
        let spec = TokenizerSpec {
            vocab_size: Some(3),
            ..TokenizerSpec::char()
        };
        let e = train_on_texts(&spec, &["abcd"]).unwrap_err();
        assert!(matches!(e, TrainError::VocabSizeTooSmall { .. }), "{e}");
        let spec = TokenizerSpec {
            vocab_size: Some(4),
            ..TokenizerSpec::char()
        };
        assert_eq!(vocab_size(&train_on_texts(&spec, &["abcd"]).unwrap()), 4);
    }
}

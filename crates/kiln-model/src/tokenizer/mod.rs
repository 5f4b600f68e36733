//! Tokenization with Hugging Face `tokenizers`, loaded from a `tokenizer.json` or rebuilt
//! from GGUF metadata, plus the BOS/EOS conventions of the model it came with.

pub mod gguf;
mod stream;

use std::path::Path;

pub use stream::TokenStreamDecoder;

use crate::error::{ModelError, Result};
use crate::weights::gguf::GgufFile;

#[derive(Clone)]
pub struct Tokenizer {
    /// Matches special tokens written in the text (`<|im_start|>` becomes one token).
    with_special: tokenizers::Tokenizer,
    /// Treats special-token text as plain text.
    plain: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Vec<u32>,
    /// Prepend BOS when asked for special tokens and the tokenizer's own post-processor
    /// does not (GGUF tokenizers have none).
    add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl Tokenizer {
    fn from_inner(
        inner: tokenizers::Tokenizer,
        bos: Option<u32>,
        eos: Vec<u32>,
        add_bos: bool,
    ) -> Self {
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);
        Self {
            with_special: inner,
            plain,
            bos,
            eos,
            add_bos,
        }
    }

    /// The tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let json = gguf::tokenizer_json(file)?;
        let inner: tokenizers::Tokenizer = serde_json::from_value::<tokenizers::Tokenizer>(json)
            .map_err(|e| ModelError::file(file.path(), format!("building tokenizer: {e}")))?;
        let bos = file
            .get_u64("tokenizer.ggml.bos_token_id")
            .map(|x| x as u32);
        let eos: Vec<u32> = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
            .iter()
            .filter_map(|k| file.get_u64(k).map(|x| x as u32))
            .collect();
        let spm = file.get_str("tokenizer.ggml.model") == Some("llama");
        let add_bos = file.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(spm);
        Ok(Self::from_inner(inner, bos, eos, add_bos))
    }

    /// `tokenizer.json` (the post-processor decides BOS), with ids of special tokens.
    pub fn from_file(path: &Path, bos: Option<u32>, eos: Vec<u32>) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::file(path, format!("invalid tokenizer.json: {e}")))?;
        Ok(Self::from_inner(inner, bos, eos, false))
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.with_special
    }

    pub fn vocab_size(&self) -> usize {
        self.with_special.get_vocab_size(true)
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos
    }

    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.with_special.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.with_special.id_to_token(id)
    }

    /// Token ids of `text`. `add_special` adds BOS where the model wants it; `parse_special`
    /// turns special-token text such as `<|im_end|>` into its id (llama.cpp's
    /// `parse_special`), otherwise it is tokenized as ordinary characters.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let tk = if parse_special {
            &self.with_special
        } else {
            &self.plain
        };
        let enc = tk.encode(text, add_special).map_err(tok_err)?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_special && self.add_bos {
            if let Some(b) = self.bos {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Puts BOS in front of `ids` when the model wants one and they do not start with it
    /// (a template that writes `{{ bos_token }}` already has); says whether it did.
    pub fn ensure_bos(&self, ids: &mut Vec<u32>) -> bool {
        match self.bos.filter(|_| self.add_bos) {
            Some(bos) if ids.first() != Some(&bos) => {
                ids.insert(0, bos);
                true
            }
            _ => false,
        }
    }

    /// Text of `ids`, special tokens included as written.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.with_special.decode(ids, false).map_err(tok_err)
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos.contains(&id)
    }
}

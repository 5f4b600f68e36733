//! Rebuilds a Hugging Face `tokenizers` tokenizer from GGUF metadata: byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`) with the pre-tokenizer regexes llama.cpp uses for each
//! `tokenizer.ggml.pre`, or SentencePiece-style BPE with byte fallback (`"llama"`).

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Value as Json};

use crate::error::{ModelError, Result};
use crate::weights::gguf::GgufFile;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp `llama_token_type`).
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// The pre-tokenizer regexes, applied in sequence, for a `tokenizer.ggml.pre` value, and
/// whether whole words found in the vocabulary skip merging (Llama 3).
fn pre_tokenizer_regexes(pre: &str) -> (Vec<&'static str>, bool) {
    match pre {
        "llama3" | "llama-bpe" | "falcon3" | "pixtral" => (vec![LLAMA3], true),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => (vec![QWEN2], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            (vec![r"\p{N}", GPT2], false)
        }
        _ => (vec![GPT2], false),
    }
}

fn strings(file: &GgufFile, key: &str) -> Result<Vec<String>> {
    let arr = file
        .get_array(key)
        .ok_or_else(|| ModelError::file(file.path(), format!("missing metadata key `{key}`")))?;
    arr.iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|_| ModelError::file(file.path(), format!("`{key}` holds a non-string")))
        })
        .collect()
}

fn ints(file: &GgufFile, key: &str) -> Vec<i32> {
    file.get_array(key)
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::I32(x) => *x,
                    Value::U32(x) => *x as i32,
                    Value::I8(x) => *x as i32,
                    Value::U8(x) => *x as i32,
                    _ => 1,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn floats(file: &GgufFile, key: &str) -> Vec<f32> {
    file.get_array(key)
        .map(|a| a.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect())
        .unwrap_or_default()
}

fn added_tokens(tokens: &[String], types: &[i32]) -> Vec<Json> {
    tokens
        .iter()
        .enumerate()
        .filter_map(|(id, tok)| {
            let ty = *types.get(id).unwrap_or(&1);
            (ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED).then(|| {
                json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": ty == TYPE_CONTROL})
            })
        })
        .collect()
}

/// The `tokenizer.json` document equivalent to the file's tokenizer.
pub fn tokenizer_json(file: &GgufFile) -> Result<Json> {
    let model = file.get_str("tokenizer.ggml.model").unwrap_or("gpt2");
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let types = ints(file, "tokenizer.ggml.token_type");
    let vocab: serde_json::Map<String, Json> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added = added_tokens(&tokens, &types);
    match model {
        "gpt2" => {
            let merges = strings(file, "tokenizer.ggml.merges")?;
            let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("default");
            let (regexes, ignore_merges) = pre_tokenizer_regexes(pre);
            let mut pre_tokenizers: Vec<Json> = regexes
                .iter()
                .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
                .collect();
            pre_tokenizers.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}));
            Ok(json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added,
                "normalizer": null,
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre_tokenizers},
                "post_processor": null,
                "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
                "model": {"type": "BPE", "dropout": null, "unk_token": null,
                          "continuing_subword_prefix": null, "end_of_word_suffix": null,
                          "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                          "vocab": vocab, "merges": merges}
            }))
        }
        "llama" => {
            let scores = floats(file, "tokenizer.ggml.scores");
            let merges = sentencepiece_merges(&tokens, &scores, &types);
            let add_space = file
                .get_bool("tokenizer.ggml.add_space_prefix")
                .unwrap_or(true);
            let mut normalizers = vec![];
            if add_space {
                normalizers.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
            }
            normalizers.push(
                json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
            );
            let unk = file
                .get_u64("tokenizer.ggml.unknown_token_id")
                .and_then(|i| tokens.get(i as usize).cloned());
            let mut decoders = vec![
                json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if add_space {
                decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            Ok(json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added,
                "normalizer": {"type": "Sequence", "normalizers": normalizers},
                "pre_tokenizer": null,
                "post_processor": null,
                "decoder": {"type": "Sequence", "decoders": decoders},
                "model": {"type": "BPE", "dropout": null, "unk_token": unk,
                          "continuing_subword_prefix": null, "end_of_word_suffix": null,
                          "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                          "vocab": vocab, "merges": merges}
            }))
        }
        other => Err(ModelError::file(
            file.path(),
            format!("tokenizer model `{other}` is not supported (supported: gpt2, llama)"),
        )),
    }
}

/// SentencePiece stores scores, not merges: a pair (a, b) merges with the priority of the
/// piece a+b, highest score first, which is the order llama.cpp's SPM tokenizer merges in.
fn sentencepiece_merges(tokens: &[String], scores: &[f32], types: &[i32]) -> Vec<String> {
    let index: std::collections::HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f32, usize, usize, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types.get(id).copied().unwrap_or(1) != 1 {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (index.get(l), index.get(r)) {
                merges.push((score, li, ri, format!("{l} {r}")));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    merges.into_iter().map(|m| m.3).collect()
}

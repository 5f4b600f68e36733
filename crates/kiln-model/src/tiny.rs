//! A tiny, randomly initialised Llama written as a complete Hugging Face directory
//! (config.json, model.safetensors, byte-level tokenizer.json, tokenizer_config.json with a
//! ChatML template). It needs no download, so `kiln demo` and tests can exercise the whole
//! load → tokenize → generate path anywhere. Its text is noise: the weights are untrained.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::config::BlockKinds;
#[cfg(test)]
use crate::config::{MlpKind, NormKind, PositionKind};
use crate::error::{ModelError, Result};
use crate::params::{parameter_specs, Init};
use crate::weights::vars::normal;

#[derive(Debug, Clone)]
pub struct TinyLlamaSpec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub context: usize,
    pub seed: u64,
    /// Llama's parts by default; others write GPT-2-style tensors and `kiln_kinds`.
    pub kinds: BlockKinds,
}

impl Default for TinyLlamaSpec {
    fn default() -> Self {
        Self {
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 128,
            context: 256,
            seed: 0,
            kinds: BlockKinds::default(),
        }
    }
}

/// GPT-2's reversible byte → printable character map.
pub fn byte_to_char(b: u8) -> char {
    let printable =
        |c: u32| (33..=126).contains(&c) || (161..=172).contains(&c) || (174..=255).contains(&c);
    if printable(b as u32) {
        return char::from(b);
    }
    let n = (0..b as u32).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

const SPECIAL: [&str; 2] = ["<|im_start|>", "<|im_end|>"];

fn tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..=255u8)
        .map(|b| (byte_to_char(b).to_string(), json!(b)))
        .collect();
    let added: Vec<_> = SPECIAL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false,
                             "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    })
}

/// Writes the model directory to `dir` (created if needed).
pub fn write_tiny_llama(dir: &Path, spec: &TinyLlamaSpec) -> Result<()> {
    let io = |e: std::io::Error| ModelError::file(dir, e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let vocab = 256 + SPECIAL.len();
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab, "hidden_size": spec.hidden, "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": spec.context, "tie_word_embeddings": false,
        "hidden_act": "silu", "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float32"
    });
    if !spec.kinds.is_llama() {
        config["kiln_kinds"] =
            serde_json::to_value(spec.kinds).map_err(|e| ModelError::file(dir, e))?;
    }
    let cfg: crate::config::HfLlamaConfig =
        serde_json::from_value(config.clone()).map_err(|e| ModelError::file(dir, e))?;
    let cfg = cfg.into_config()?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for p in parameter_specs(&cfg) {
        let n: usize = p.shape.iter().product();
        let data = match p.init {
            Init::Normal(std) => normal(&mut rng, n, std),
            Init::Ones => vec![1.0; n],
            // Random biases, so a test notices a bias that is loaded but not applied.
            Init::Zeros => normal(&mut rng, n, 0.02),
        };
        tensors.insert(p.name, Tensor::from_vec(data, p.shape, &Device::Cpu)?);
    }
    let write = |name: &str, v: &serde_json::Value| -> Result<()> {
        let text = serde_json::to_string_pretty(v).map_err(|e| ModelError::file(dir, e))?;
        Ok(crate::atomic::write_bytes_atomic(
            &dir.join(name),
            text.as_bytes(),
        )?)
    };
    write("config.json", &config)?;
    write("tokenizer.json", &tokenizer_json())?;
    write(
        "tokenizer_config.json",
        &json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                "chat_template": crate::chat::CHATML}),
    )?;
    Ok(crate::atomic::write_atomic_via(
        &dir.join("model.safetensors"),
        |tmp| candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other),
    )?)
}

/// A LoRA adapter for `base` on every layer and each of `lora`'s modules, with normal
/// random A and B (std `a_std`, `b_std`; `b_std = 0` gives the zero B of a fresh adapter,
/// which must leave the model unchanged). For tests of the adapter path and of merging.
pub fn random_adapter(
    base: &crate::config::ModelConfig,
    lora: &crate::lora::LoraConfig,
    seed: u64,
    a_std: f32,
    b_std: f32,
) -> Result<crate::lora::LoraAdapter> {
    use crate::lora::{LoraAdapter, LoraTarget, LoraWeights};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weights = std::collections::BTreeMap::new();
    for layer in 0..base.num_layers {
        for &module in &lora.modules()? {
            let (fan_in, fan_out) = module.features(base).ok_or_else(|| {
                ModelError::LoraConfig(format!("the base has no {}", module.name()))
            })?;
            let a = normal(&mut rng, lora.r * fan_in, a_std);
            let b = if b_std == 0.0 {
                vec![0.0; fan_out * lora.r]
            } else {
                normal(&mut rng, fan_out * lora.r, b_std)
            };
            let w = LoraWeights {
                a: Tensor::from_vec(a, (lora.r, fan_in), &Device::Cpu)?,
                b: Tensor::from_vec(b, (fan_out, lora.r), &Device::Cpu)?,
            };
            weights.insert(LoraTarget::new(layer, module), w);
        }
    }
    Ok(LoraAdapter {
        config: lora.clone(),
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal_lm::{Batch, CausalLM, ForwardContext, LogitsMode};

    fn tiny() -> (tempfile::TempDir, crate::LoadedModel) {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_llama(
            dir.path(),
            &TinyLlamaSpec {
                seed: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let m = crate::load(dir.path(), &Device::Cpu).unwrap();
        (dir, m)
    }

    #[test]
    fn byte_map_is_a_bijection_onto_distinct_chars() {
        let chars: std::collections::HashSet<char> = (0..=255u8).map(byte_to_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(b' '), '\u{120}'); // GPT-2's "Ġ"
    }

    #[test]
    fn tokenizer_round_trips_any_utf8_and_parses_special_tokens() {
        let (_d, m) = tiny();
        let text = "héllo\tworld 🙂";
        let ids = m.tokenizer.encode(text, false, true).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(m.tokenizer.decode(&ids).unwrap(), text);
        let ids = m.tokenizer.encode("<|im_start|>a", false, true).unwrap();
        assert_eq!(ids, vec![256, b'a' as u32]);
        let ids = m.tokenizer.encode("<|im_start|>a", false, false).unwrap();
        assert_eq!(ids.len(), "<|im_start|>a".len());
    }

    /// Logits for every position of `tokens`: the first `split` in one cached prefill,
    /// the rest one at a time through the same cache.
    fn cached_logits(m: &crate::LoadedModel, tokens: &[u32], split: usize) -> Tensor {
        let mut cache = m.model.new_cache();
        let mut rows = vec![];
        let mut at = 0;
        while at < tokens.len() {
            let n = if at == 0 { split } else { 1 };
            let b =
                Batch::from_tokens(&tokens[at..at + n], at, LogitsMode::All, &Device::Cpu).unwrap();
            let y = m
                .model
                .forward(&b, &mut ForwardContext::with_cache(&mut cache));
            rows.push(y.unwrap().squeeze(0).unwrap());
            at += n;
        }
        assert_eq!(cache.len(), tokens.len());
        Tensor::cat(&rows, 0).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn cached_decode_equals_full_recompute() {
        let (_d, m) = tiny();
        let tokens: Vec<u32> = "The quick brown fox".bytes().map(u32::from).collect();
        // The same inference path (f16 cache) prefilling everything vs decoding step by step.
        let all_at_once = cached_logits(&m, &tokens, tokens.len());
        let stepwise = cached_logits(&m, &tokens, 7);
        let diff = max_abs_diff(&all_at_once, &stepwise);
        assert!(
            diff < 1e-4,
            "stepwise vs one-shot cached max abs diff {diff}"
        );
        // And the f16-cache path vs the f32 training path with no cache: equal up to the
        // f16 roundings of keys, values, queries and probabilities.
        let full = m
            .model
            .forward(
                &Batch::from_tokens(&tokens, 0, LogitsMode::All, &Device::Cpu).unwrap(),
                &mut ForwardContext::training(),
            )
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = max_abs_diff(&full, &stepwise);
        assert!(diff < 2e-2, "cached vs uncached max abs diff {diff}");
    }

    #[test]
    fn every_block_variant_loads_and_decodes_consistently() {
        let tokens: Vec<u32> = "to be or not".bytes().map(u32::from).collect();
        for (norm, position, mlp) in [
            (NormKind::LayerNorm, PositionKind::Learned, MlpKind::Gelu),
            (NormKind::LayerNorm, PositionKind::Rope, MlpKind::SwiGlu),
            (NormKind::RmsNorm, PositionKind::Learned, MlpKind::SwiGlu),
            (NormKind::RmsNorm, PositionKind::Rope, MlpKind::Gelu),
        ] {
            let kinds = BlockKinds {
                norm,
                position,
                mlp,
            };
            let dir = tempfile::tempdir().unwrap();
            let spec = TinyLlamaSpec {
                kinds,
                ..Default::default()
            };
            write_tiny_llama(dir.path(), &spec).unwrap();
            let m = crate::load(dir.path(), &Device::Cpu).unwrap();
            assert_eq!(m.model.config().kinds, kinds);
            let all = cached_logits(&m, &tokens, tokens.len());
            let step = cached_logits(&m, &tokens, 3);
            assert!(
                max_abs_diff(&all, &step) < 1e-4,
                "{kinds:?}: stepwise differs"
            );
            let full = m
                .model
                .forward(
                    &Batch::from_tokens(&tokens, 0, LogitsMode::All, &Device::Cpu).unwrap(),
                    &mut ForwardContext::training(),
                )
                .unwrap()
                .squeeze(0)
                .unwrap();
            assert!(
                max_abs_diff(&full, &step) < 2e-2,
                "{kinds:?}: cached vs uncached"
            );
        }
    }

    #[test]
    fn forward_rejects_a_batch_that_does_not_continue_the_cache() {
        let (_d, m) = tiny();
        let mut cache = m.model.new_cache();
        let b = Batch::from_tokens(&[1, 2, 3], 5, LogitsMode::Last, &Device::Cpu).unwrap();
        let err = m
            .model
            .forward(&b, &mut ForwardContext::with_cache(&mut cache))
            .unwrap_err();
        assert!(err.to_string().contains("cache"), "{err}");
    }

    /// Several completions from one prefill: the greedy one is `generate`'s, and sampled ones
    /// are reproducible per seed and differ across the set.
    #[test]
    fn sampled_completions_share_the_prompt_and_match_generate() {
        let (_d, m) = tiny();
        let ids = m.tokenizer.encode("hello there", false, true).unwrap();
        let greedy = crate::SamplingParams::greedy();
        let opts = crate::GenerateOptions {
            max_tokens: 10,
            sampling: greedy.clone(),
            ..Default::default()
        };
        let want = crate::generate(&m.model, &m.tokenizer, &ids, &opts, &Device::Cpu, |_| {})
            .unwrap()
            .token_ids;
        let run = |n, p: &crate::SamplingParams| {
            crate::sample_completions(&m.model, &m.tokenizer, &ids, n, p, 10, &Device::Cpu).unwrap()
        };
        assert_eq!(run(2, &greedy), vec![want.clone(), want]);
        let hot = crate::SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 9,
            ..greedy
        };
        let a = run(4, &hot);
        assert_eq!(a, run(4, &hot), "same seed, same samples");
        assert!(a.iter().any(|s| s != &a[0]), "samples should differ: {a:?}");
        assert!(a.iter().all(|s| s.len() <= 10));
    }

    #[test]
    fn generation_is_seed_reproducible_and_respects_max_tokens() {
        let (_d, m) = tiny();
        let ids = m.tokenizer.encode("hello", false, true).unwrap();
        let opts = crate::GenerateOptions {
            max_tokens: 12,
            stop_at_eos: false,
            ..Default::default()
        };
        let a = crate::generate(&m.model, &m.tokenizer, &ids, &opts, &Device::Cpu, |_| {}).unwrap();
        let b = crate::generate(&m.model, &m.tokenizer, &ids, &opts, &Device::Cpu, |_| {}).unwrap();
        assert_eq!(a.token_ids, b.token_ids);
        assert_eq!(a.token_ids.len(), 12);
        assert_eq!(a.finish_reason, crate::FinishReason::Length);
        let too_long = crate::GenerateOptions {
            max_tokens: 300,
            ..opts
        };
        let err = crate::generate(
            &m.model,
            &m.tokenizer,
            &ids,
            &too_long,
            &Device::Cpu,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("context length of 256"), "{err}");
    }
}

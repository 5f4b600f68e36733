//! Single-stream generation: prefill the prompt, then sample token by token with a KV
//! cache until EOS, a stop string or the token limit. The serving engine batches many such
//! streams; this loop is what `kiln generate` and `kiln chat` use.

use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;

use crate::causal_lm::{Batch, CausalLM, ForwardContext, LogitsMode};
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::sampling::{LogitsProcessor, SamplingParams};
use crate::stop::StopMatcher;
use crate::tokenizer::{TokenStreamDecoder, Tokenizer};

#[derive(Debug, Clone, Serialize)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// Stop at the model's end-of-sequence tokens (off to force exactly `max_tokens`).
    pub stop_at_eos: bool,
    /// Go past the model's context: the prompt is cut to its newest `context` tokens, and
    /// whenever the cache is full generation restarts from the newest half of the text
    /// (llama.cpp's context shift, recomputed rather than shifted so learned position tables
    /// restart too). For short-context models, such as nanoGPT-style character models (64
    /// positions) whose samples are longer than what they see at once. Off: the prompt plus
    /// `max_tokens` must fit the context.
    pub sliding_window: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            sampling: SamplingParams::default(),
            stop: vec![],
            stop_at_eos: true,
            sliding_window: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    pub timings: Timings,
}

/// The last position's logits as a Vec, from (1, vocab) or (vocab).
pub fn last_logits(logits: &Tensor) -> Result<Vec<f32>> {
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}

/// Generates a continuation of `prompt_ids`, calling `on_text` with each piece of text as it
/// becomes final. The prompt plus `max_tokens` must fit the model's context unless
/// `opts.sliding_window`.
pub fn generate(
    model: &dyn CausalLM,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    opts: &GenerateOptions,
    device: &candle_core::Device,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    let slide = opts.sliding_window;
    let ctx_len = model.config().max_position_embeddings;
    if prompt_ids.is_empty() {
        return Err(ModelError::Tokenizer("the prompt has no tokens".into()));
    }
    if !slide && prompt_ids.len() + opts.max_tokens > ctx_len {
        return Err(ModelError::ContextOverflow {
            prompt: prompt_ids.len(),
            generate: opts.max_tokens,
            context: ctx_len,
        });
    }
    let mut sampler = LogitsProcessor::new(opts.sampling.clone())?;
    let mut cache = KvCache::new(model.config().num_layers);
    let mut stops = StopMatcher::new(opts.stop.clone());
    let mut detok = TokenStreamDecoder::new();
    let mut history = prompt_ids.to_vec();
    let mut generated = Vec::new();
    let mut text = String::new();
    let mut finish = FinishReason::Length;

    let t0 = Instant::now();
    let first = if slide {
        &prompt_ids[prompt_ids.len().saturating_sub(ctx_len)..]
    } else {
        prompt_ids
    };
    let batch = Batch::from_tokens(first, 0, LogitsMode::Last, device)?;
    let mut logits =
        last_logits(&model.forward(&batch, &mut ForwardContext::with_cache(&mut cache))?)?;
    let prefill = t0.elapsed();
    let t1 = Instant::now();
    while generated.len() < opts.max_tokens {
        let next = sampler.sample(&logits, &history);
        if opts.stop_at_eos && tokenizer.is_eos(next) {
            finish = FinishReason::Stop;
            break;
        }
        generated.push(next);
        history.push(next);
        if let Some(piece) = detok.push(tokenizer, next)? {
            let (emit, hit) = stops.push(&piece);
            text.push_str(&emit);
            on_text(&emit);
            if hit {
                finish = FinishReason::Stop;
                break;
            }
        }
        if generated.len() == opts.max_tokens {
            break;
        }
        let batch = if slide && cache.len() >= ctx_len {
            cache = KvCache::new(model.config().num_layers);
            let keep = (ctx_len / 2).max(1).min(history.len());
            let tail = &history[history.len() - keep..];
            Batch::from_tokens(tail, 0, LogitsMode::Last, device)?
        } else {
            Batch::from_tokens(&[next], cache.len(), LogitsMode::Last, device)?
        };
        logits = last_logits(&model.forward(&batch, &mut ForwardContext::with_cache(&mut cache))?)?;
    }
    if finish != FinishReason::Stop || opts.stop.is_empty() {
        if let Some(rest) = detok.flush(tokenizer)? {
            let (emit, _) = stops.push(&rest);
            text.push_str(&emit);
            on_text(&emit);
        }
        let rest = stops.finish();
        text.push_str(&rest);
        on_text(&rest);
    }
    let decode = t1.elapsed();
    let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    Ok(Generation {
        timings: Timings {
            prompt_tokens: prompt_ids.len(),
            generated_tokens: generated.len(),
            prefill_ms: prefill.as_secs_f64() * 1e3,
            decode_ms: decode.as_secs_f64() * 1e3,
            prefill_tok_s: per_s(prompt_ids.len(), prefill),
            // The first token comes from the prefill logits.
            decode_tok_s: per_s(generated.len().saturating_sub(1), decode),
        },
        prompt_ids: prompt_ids.to_vec(),
        token_ids: generated,
        text,
        finish_reason: finish,
    })
}

/// `n` completions of one prompt, each at most `max_tokens` long and ending before the
/// model's end-of-sequence token. The prompt is computed once and each completion decodes
/// from a copy of its KV cache; completion i samples with seed `sampling.seed + i`, so the
/// set is reproducible. For preference data and task evaluation, where many short answers
/// to one long prompt are wanted.
pub fn sample_completions(
    model: &dyn CausalLM,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    n: usize,
    sampling: &SamplingParams,
    max_tokens: usize,
    device: &candle_core::Device,
) -> Result<Vec<Vec<u32>>> {
    if prompt_ids.is_empty() {
        return Err(ModelError::Tokenizer("the prompt has no tokens".into()));
    }
    let ctx_len = model.config().max_position_embeddings;
    if prompt_ids.len() + max_tokens > ctx_len {
        return Err(ModelError::ContextOverflow {
            prompt: prompt_ids.len(),
            generate: max_tokens,
            context: ctx_len,
        });
    }
    let mut prompt_cache = KvCache::new(model.config().num_layers);
    let batch = Batch::from_tokens(prompt_ids, 0, LogitsMode::Last, device)?;
    let prompt_logits =
        last_logits(&model.forward(&batch, &mut ForwardContext::with_cache(&mut prompt_cache))?)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut sampler = LogitsProcessor::new(SamplingParams {
            seed: sampling.seed.wrapping_add(i as u64),
            ..sampling.clone()
        })?;
        let mut cache = prompt_cache.clone();
        let mut logits = prompt_logits.clone();
        let mut history = prompt_ids.to_vec();
        let mut tokens = Vec::new();
        while tokens.len() < max_tokens {
            let next = sampler.sample(&logits, &history);
            if tokenizer.is_eos(next) {
                break;
            }
            tokens.push(next);
            history.push(next);
            if tokens.len() == max_tokens {
                break;
            }
            let batch = Batch::from_tokens(&[next], cache.len(), LogitsMode::Last, device)?;
            logits =
                last_logits(&model.forward(&batch, &mut ForwardContext::with_cache(&mut cache))?)?;
        }
        out.push(tokens);
    }
    Ok(out)
}

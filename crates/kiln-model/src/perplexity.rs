//! Perplexity computed the way llama.cpp's `llama-perplexity` does, so the two figures
//! compare directly: the token stream is cut into non-overlapping windows of `n_ctx`
//! tokens, each window's first token becomes BOS when the model adds BOS, and only the
//! second half of each window is scored (every scored token has at least n_ctx/2 context).

use serde::Serialize;

use crate::causal_lm::{Batch, CausalLM, ForwardContext, LogitsMode};
use crate::error::{ModelError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct PerplexityResult {
    pub ppl: f64,
    /// Standard error of the perplexity estimate (delta method, as llama.cpp reports it).
    pub ppl_stderr: f64,
    pub mean_nll: f64,
    pub tokens_scored: usize,
    pub chunks: usize,
    pub ctx: usize,
}

/// Scores `tokens` (the whole text, tokenized with BOS if the model adds one).
/// `on_chunk(i, n, running_ppl)` reports progress.
pub fn perplexity(
    model: &dyn CausalLM,
    tokens: &[u32],
    n_ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    device: &candle_core::Device,
    mut on_chunk: impl FnMut(usize, usize, f64),
) -> Result<PerplexityResult> {
    if n_ctx < 4 {
        return Err(ModelError::Op {
            op: "perplexity",
            msg: format!("--ctx must be at least 4, got {n_ctx}"),
        });
    }
    if n_ctx > model.config().max_position_embeddings {
        return Err(ModelError::ContextOverflow {
            prompt: n_ctx,
            generate: 0,
            context: model.config().max_position_embeddings,
        });
    }
    if tokens.len() < 2 * n_ctx {
        return Err(ModelError::Op {
            op: "perplexity",
            msg: format!(
                "the text has {} tokens; at least {} (2 x --ctx) are needed",
                tokens.len(),
                2 * n_ctx
            ),
        });
    }
    let available = tokens.len() / n_ctx;
    let n_chunks = max_chunks.map_or(available, |m| m.min(available)).max(1);
    let first = n_ctx / 2;
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    for chunk in 0..n_chunks {
        let start = chunk * n_ctx;
        let mut window = tokens[start..start + n_ctx].to_vec();
        if let Some(b) = bos {
            window[0] = b;
        }
        let batch = Batch::from_tokens(&window, 0, LogitsMode::All, device)?;
        // Through a fresh cache: the inference path, with llama.cpp's f16 roundings.
        let mut cache = model.new_cache();
        let logits = model.forward(&batch, &mut ForwardContext::with_cache(&mut cache))?;
        let logits = logits.squeeze(0)?; // (n_ctx, vocab)
        let vocab = logits.dim(1)?;
        let rows = logits.narrow(0, first, n_ctx - 1 - first)?;
        let data = rows.flatten_all()?.to_vec1::<f32>()?;
        for (i, row) in data.chunks(vocab).enumerate() {
            let target = tokens[start + first + 1 + i] as usize;
            let lp = log_softmax_at(row, target);
            nll -= lp;
            nll2 += lp * lp;
            count += 1;
        }
        on_chunk(chunk + 1, n_chunks, (nll / count as f64).exp());
    }
    let mean = nll / count as f64;
    let var = (nll2 / count as f64 - mean * mean).max(0.0) / (count as f64 - 1.0).max(1.0);
    let ppl = mean.exp();
    Ok(PerplexityResult {
        ppl,
        ppl_stderr: ppl * var.sqrt(),
        mean_nll: mean,
        tokens_scored: count,
        chunks: n_chunks,
        ctx: n_ctx,
    })
}

/// log p(target) under softmax(row), accumulated in f64.
pub fn log_softmax_at(row: &[f32], target: usize) -> f64 {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    row[target] as f64 - max - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_definition() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        for t in 0..3 {
            let want = ((row[t] as f64).exp() / z).ln();
            assert!((log_softmax_at(&row, t) - want).abs() < 1e-12);
        }
    }
}

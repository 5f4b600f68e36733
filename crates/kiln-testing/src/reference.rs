//! Independent references for what the engine and the language-model clients compute: a
//! plain full-sequence forward (contiguous cache, every position's logits) with the
//! log-softmax in f64.

use candle_core::Device;
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};

/// Every position's logits of `tokens`, one row each.
pub fn logits_rows(model: &dyn CausalLM, tokens: &[u32]) -> Vec<Vec<f32>> {
    let batch = Batch::from_tokens(tokens, 0, LogitsMode::All, &Device::Cpu).expect("a batch");
    let mut cache = model.new_cache();
    model
        .forward(&batch, &mut ForwardContext::with_cache(&mut cache))
        .expect("a forward pass")
        .squeeze(0)
        .and_then(|t| t.to_vec2::<f32>())
        .expect("(t, vocab) logits")
}

/// The sum of the log-probabilities of `tokens[from..]`, each given the tokens before it.
pub fn logprob_from(model: &dyn CausalLM, tokens: &[u32], from: usize) -> f64 {
    let logits = logits_rows(model, tokens);
    (from.max(1)..tokens.len())
        .map(|i| {
            let row = &logits[i - 1];
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            row[tokens[i] as usize] as f64 - lse
        })
        .sum()
}

/// Every position's logits of `tokens`, flattened, through the cache-free (training) path:
/// what LoRA and merge tests compare between an adapted model and a plain one.
pub fn logits(model: &dyn CausalLM, tokens: &[u32]) -> Vec<f32> {
    let batch = Batch::from_tokens(tokens, 0, LogitsMode::All, &Device::Cpu).expect("a batch");
    let out = model
        .forward(&batch, &mut ForwardContext::training())
        .expect("a forward pass");
    out.flatten_all().and_then(|t| t.to_vec1()).expect("logits")
}

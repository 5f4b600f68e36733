//! Fine-tuning losses on a batch of padded rows: the hidden states of every position, then
//! logits only where a trained token is predicted (the answer's tokens are a fraction of
//! each row, and the LM head over a 49k vocabulary is the largest product of the step).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use kiln_model::Llama;

use super::checkpointed::{final_hidden, loss_and_grads};
use crate::error::Result;
use crate::sft_data::SftBatch;

/// The positions (row-major over the batch) whose hidden state predicts a trained token,
/// and those tokens.
fn trained_targets(batch: &SftBatch) -> (Vec<u32>, Vec<u32>) {
    batch
        .loss_mask
        .iter()
        .enumerate()
        // The mask is never set on a row's first token, so i - 1 stays in the row.
        .filter(|&(i, &m)| m && i % batch.seq_len != 0)
        .map(|(i, _)| ((i - 1) as u32, batch.input_ids[i]))
        .unzip()
}

fn input_ids(batch: &SftBatch, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        batch.input_ids.clone(),
        (batch.rows, batch.seq_len),
        dev,
    )?)
}

/// Mean cross-entropy of the trained tokens, from the last block's output `h` (b, t, d).
fn head_loss(model: &Llama, h: &Tensor, at: &[u32], targets: &[u32]) -> Result<Tensor> {
    let (b, t, d) = h.dims3()?;
    let dev = h.device();
    let picked = h
        .reshape((b * t, d))?
        .index_select(&Tensor::from_slice(at, at.len(), dev)?, 0)?;
    let logits = model.lm_head().forward(&model.final_norm(&picked)?)?;
    let targets = Tensor::from_slice(targets, targets.len(), dev)?;
    Ok(kiln_model::kernels::train::cross_entropy(
        &logits, &targets,
    )?)
}

/// Mean next-token cross-entropy over the batch's trained tokens, and their count; no
/// graph kept (evaluation).
pub fn sft_loss(model: &Llama, batch: &SftBatch, dev: &Device) -> Result<(f64, usize)> {
    let (at, targets) = trained_targets(batch);
    let h = final_hidden(model, &input_ids(batch, dev)?)?;
    let loss = head_loss(model, &h, &at, &targets)?;
    Ok((loss.to_scalar::<f32>()? as f64, at.len()))
}

/// The same loss times `scale`, with the gradients of `vars` (checkpointed backward).
pub fn sft_loss_and_grads(
    model: &Llama,
    batch: &SftBatch,
    dev: &Device,
    vars: &[Var],
    scale: f64,
) -> Result<(f64, GradStore)> {
    let (at, targets) = trained_targets(batch);
    let (loss, grads) = loss_and_grads(model, &input_ids(batch, dev)?, vars, |h| {
        Ok((head_loss(model, h, &at, &targets)? * scale)?)
    })?;
    Ok((loss.to_scalar::<f32>()? as f64, grads))
}

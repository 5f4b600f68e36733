//! Fine-tuning losses on a batch of padded rows: the hidden states of every position, then
//! logits only where a trained token is predicted (the answer's tokens are a fraction of
//! each row, and the LM head over a 49k vocabulary is the largest product of the step).

use candle_core::{Device, Tensor};
use kiln_model::Llama;

use crate::error::Result;
use crate::sft_data::SftBatch;

/// The positions whose hidden state predicts a trained token, and those tokens.
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

/// Logits (n, vocab) at the positions that predict the batch's trained tokens, with the
/// tokens (n).
fn trained_logits(model: &Llama, batch: &SftBatch, dev: &Device) -> Result<(Tensor, Tensor)> {
    let ids = Tensor::from_vec(batch.input_ids.clone(), (batch.rows, batch.seq_len), dev)?;
    let hidden = model.hidden_states(&ids)?;
    let d = hidden.dim(2)?;
    let hidden = hidden.reshape((batch.rows * batch.seq_len, d))?;
    let (at, targets) = trained_targets(batch);
    let n = at.len();
    let picked = hidden.index_select(&Tensor::from_vec(at, n, dev)?, 0)?;
    let logits = model.lm_head().forward(&picked)?;
    Ok((logits, Tensor::from_vec(targets, n, dev)?))
}

/// Mean next-token cross-entropy over the batch's trained tokens, and their count.
pub fn sft_loss(model: &Llama, batch: &SftBatch, dev: &Device) -> Result<(Tensor, usize)> {
    let (logits, targets) = trained_logits(model, batch, dev)?;
    let n = targets.dim(0)?;
    Ok((
        kiln_model::kernels::train::cross_entropy(&logits, &targets)?,
        n,
    ))
}

//! Fine-tuning losses on a batch of padded rows: the hidden states of every position, then
//! logits only where a trained token is predicted (the answer's tokens are a fraction of
//! each row, and the LM head over a 49k vocabulary is the largest product of the step).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use kiln_model::CausalLM;

use super::checkpointed::{final_hidden, loss_and_grads};
use crate::data::sft::SftBatch;
use crate::error::Result;

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

/// Logits (n, vocab) at positions `at` of the last block's output `h` (b, t, d).
fn picked_logits(model: &dyn CausalLM, h: &Tensor, at: &[u32]) -> Result<Tensor> {
    let (b, t, d) = h.dims3()?;
    let picked = h
        .reshape((b * t, d))?
        .index_select(&Tensor::from_slice(at, at.len(), h.device())?, 0)?;
    Ok(model.logits(&model.final_norm(&picked)?)?)
}

/// Mean cross-entropy of the trained tokens, from the last block's output `h`.
fn head_loss(model: &dyn CausalLM, h: &Tensor, at: &[u32], targets: &[u32]) -> Result<Tensor> {
    let logits = picked_logits(model, h, at)?;
    let targets = Tensor::from_slice(targets, targets.len(), h.device())?;
    Ok(kiln_model::kernels::train::cross_entropy(
        &logits, &targets,
    )?)
}

/// Each row's summed log-probability of its trained tokens, (rows,): the log-likelihood of
/// an answer given its prompt. Computed as −n_r × (mean cross-entropy of row r's n_r
/// tokens) with the fused cross-entropy, so no (n, vocab) log-softmax is materialised.
fn row_logps(model: &dyn CausalLM, h: &Tensor, batch: &SftBatch) -> Result<Tensor> {
    let (at, targets) = trained_targets(batch);
    let logits = picked_logits(model, h, &at)?;
    let targets = Tensor::from_slice(&targets, targets.len(), h.device())?;
    let mut rows = Vec::with_capacity(batch.rows);
    let mut start = 0;
    for r in 0..batch.rows {
        // `at` is sorted, so row r's positions are one run of it.
        let n = at[start..]
            .iter()
            .take_while(|&&p| p as usize / batch.seq_len == r)
            .count();
        if n == 0 {
            return Err(crate::error::TrainError::InvalidArgument(format!(
                "row {r} of a preference batch has no scored token"
            )));
        }
        let ce = kiln_model::kernels::train::cross_entropy(
            &logits.narrow(0, start, n)?,
            &targets.narrow(0, start, n)?,
        )?;
        rows.push((ce * -(n as f64))?);
        start += n;
    }
    Ok(Tensor::stack(&rows, 0)?)
}

/// [`row_logps`] of a batch with no graph kept (reference log-probabilities, evaluation).
pub fn sequence_logps(model: &dyn CausalLM, batch: &SftBatch, dev: &Device) -> Result<Vec<f64>> {
    let h = final_hidden(model, &input_ids(batch, dev)?)?;
    let lp = row_logps(model, &h, batch)?;
    Ok(lp.to_dtype(candle_core::DType::F64)?.to_vec1()?)
}

/// `loss_of(row log-probabilities)` with the gradients of `vars` (checkpointed backward);
/// the figures `loss_of` returns come back with the loss.
pub fn logps_loss_and_grads<T>(
    model: &dyn CausalLM,
    batch: &SftBatch,
    dev: &Device,
    vars: &[Var],
    loss_of: impl FnOnce(&Tensor) -> Result<(Tensor, T)>,
) -> Result<(f64, GradStore, T)> {
    let mut figures = None;
    let (loss, grads) = loss_and_grads(model, &input_ids(batch, dev)?, vars, |h| {
        let (loss, f) = loss_of(&row_logps(model, h, batch)?)?;
        figures = Some(f);
        Ok(loss)
    })?;
    let Some(figures) = figures else {
        unreachable!("the head ran")
    };
    Ok((loss.to_scalar::<f32>()? as f64, grads, figures))
}

/// Mean next-token cross-entropy over the batch's trained tokens, and their count; no
/// graph kept (evaluation).
pub fn sft_loss(model: &dyn CausalLM, batch: &SftBatch, dev: &Device) -> Result<(f64, usize)> {
    let (at, targets) = trained_targets(batch);
    let h = final_hidden(model, &input_ids(batch, dev)?)?;
    let loss = head_loss(model, &h, &at, &targets)?;
    Ok((loss.to_scalar::<f32>()? as f64, at.len()))
}

/// The same loss times `scale`, with the gradients of `vars` (checkpointed backward).
pub fn sft_loss_and_grads(
    model: &dyn CausalLM,
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

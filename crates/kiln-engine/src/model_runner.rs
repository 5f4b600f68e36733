//! Runs one scheduled step through the model: the scheduled sequences' new tokens become one
//! (1, T) batch over the paged cache; logits come back as host rows.

use candle_core::{Device, Tensor};
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode, PagedKvCache, PagedSeq};

use crate::scheduler::SchedulerOutput;

/// Logits of a step: `rows` rows of `vocab` values, in the scheduled sequences' order.
pub struct StepLogits {
    pub data: Vec<f32>,
    pub vocab: usize,
}

impl StepLogits {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.vocab..(i + 1) * self.vocab]
    }
}

pub fn run_step(
    model: &dyn CausalLM,
    cache: &mut PagedKvCache,
    device: &Device,
    out: &SchedulerOutput,
) -> kiln_model::Result<StepLogits> {
    let seqs: Vec<PagedSeq> = out
        .seqs
        .iter()
        .map(|s| PagedSeq {
            start_pos: s.start_pos,
            len: s.tokens.len(),
            block_table: s.block_table.clone(),
            logits: s.logits,
        })
        .collect();
    let ids: Vec<u32> = out
        .seqs
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .collect();
    let n = ids.len();
    let batch = Batch::new(Tensor::from_vec(ids, (1, n), device)?, 0, LogitsMode::All);
    let logits = model.forward(&batch, &mut ForwardContext::paged(cache, &seqs))?;
    let (_, vocab) = logits.dims2()?;
    Ok(StepLogits {
        data: logits.flatten_all()?.to_vec1::<f32>()?,
        vocab,
    })
}

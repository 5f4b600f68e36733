//! What a fine-tuning method contributes to the shared loop: its batches (and where it is
//! in them, for checkpoints), the loss of a micro-batch with the adapter's gradients, and
//! its held-out figures. SFT and DPO are two implementations.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::Var;
use kiln_model::CausalLM;

use crate::error::Result;

/// One micro-batch's result.
pub struct MicroStep {
    /// The loss, already multiplied by the accumulation scale.
    pub loss: f64,
    pub grads: GradStore,
    /// Non-padding tokens processed (forward), for tokens/s.
    pub tokens: usize,
    /// Figures to average over the step's micro-batches (DPO's rewards and accuracy).
    pub extra: BTreeMap<String, f64>,
}

/// Held-out figures: a loss (plotted as the eval curve) and any others.
pub struct Evaluation {
    pub loss: f64,
    pub extra: BTreeMap<String, f64>,
}

pub trait Objective {
    /// The next micro-batch's loss times `scale`, with the gradients of `vars`.
    fn micro_step(&mut self, model: &dyn CausalLM, vars: &[Var], scale: f64) -> Result<MicroStep>;
    /// Figures on the held-out set with dropout off; `None` without one.
    fn evaluate(&self, model: &dyn CausalLM) -> Result<Option<Evaluation>>;
    /// Where the data stream is, for a checkpoint.
    fn position(&self) -> serde_json::Value;
    fn restore(&mut self, position: &serde_json::Value) -> Result<()>;
}

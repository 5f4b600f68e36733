//! What a run contributes to the one training loop. An [`Objective`] is the loss: its
//! batches (and where it is in them, for checkpoints), the loss of a micro-batch with its
//! gradients, and its held-out figures; pretraining, SFT and DPO are three of them. A
//! [`Trainable`] is what the gradients update and what the run writes: every weight of a
//! model trained from scratch, or a LoRA adapter's factors on a frozen base.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::Var;
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::Param;
use kiln_model::CausalLM;

use crate::data::rng::DataRngState;
use crate::error::Result;

/// Which micro-batch of which step is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroBatch {
    /// The optimizer step (0-based).
    pub step: u64,
    /// The micro-batch within it.
    pub index: usize,
    /// Micro-batches per step: each loss is divided by it, so their gradients sum to the
    /// step's mean.
    pub grad_accum: usize,
}

impl MicroBatch {
    /// What each micro-batch's loss is multiplied by.
    pub fn scale(&self) -> f64 {
        1.0 / self.grad_accum as f64
    }
}

/// One micro-batch's result.
pub struct MicroStep {
    /// The loss, already divided by the accumulation.
    pub loss: f64,
    pub grads: GradStore,
    /// Non-padding tokens processed (forward), for tokens/s.
    pub tokens: usize,
    /// Figures to average over the step's micro-batches (DPO's rewards and accuracy).
    pub extra: BTreeMap<String, f64>,
}

/// Held-out figures: a loss (plotted as the eval curve) and any others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    /// The same loss on fixed batches of the training data (pretraining).
    pub train_loss: Option<f64>,
    pub extra: BTreeMap<String, f64>,
}

/// Where an objective's data stream is: the random state it draws with, and anything else
/// it needs to continue (a sampler's epoch and offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub rng: DataRngState,
    pub data: serde_json::Value,
}

impl Position {
    /// The position of an objective whose sampler keeps its own shuffle state: the seed's
    /// RNG state recorded as is, the sampler's place as data.
    pub fn of_sampler(seed: u64, place: &impl serde::Serialize) -> Self {
        Self {
            rng: crate::data::rng::DataRng::seed_from_u64(seed).state(),
            data: serde_json::to_value(place).unwrap_or_default(),
        }
    }

    /// The sampler's place this position records.
    pub fn sampler_place<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.data.clone()).map_err(|e| {
            crate::error::TrainError::InvalidArgument(format!(
                "the checkpoint's data position: {e}"
            ))
        })
    }
}

pub trait Objective {
    /// Called once the run directory exists, before the first step.
    fn on_start(&mut self, run: &Path) -> Result<()> {
        let _ = run;
        Ok(())
    }
    /// The next micro-batch's loss (divided by `at.grad_accum`) with the gradients of `vars`.
    fn micro_step(
        &mut self,
        model: &dyn CausalLM,
        vars: &[Var],
        at: MicroBatch,
    ) -> Result<MicroStep>;
    /// Figures on the held-out data with dropout off; `None` without any.
    fn evaluate(&self, model: &dyn CausalLM) -> Result<Option<Evaluation>>;
    /// Where the data stream is, for a checkpoint.
    fn position(&self) -> Position;
    fn restore(&mut self, position: &Position) -> Result<()>;
}

/// What a run trains and writes.
pub trait Trainable {
    fn model(&self) -> &dyn CausalLM;
    /// The parameters the optimizer updates.
    fn params(&self) -> &[Param];
    /// The model's configuration: a checkpoint of another model is refused.
    fn model_config(&self) -> &ModelConfig;
    /// The seed of the dropout masks of the next forward passes (`None`: dropout off).
    fn set_dropout_seed(&self, seed: Option<u64>) {
        let _ = seed;
    }
    /// Writes the run's result into `run`: at every checkpoint (`end` false) and at the end.
    fn save(&self, run: &Path, end: bool) -> Result<()>;
}

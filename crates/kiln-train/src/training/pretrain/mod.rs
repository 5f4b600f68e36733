//! Pretraining (`kiln train`): a model initialised from a seed, trained on random windows of
//! the train shard with next-token cross-entropy, evaluated on fixed batches of both
//! shards. It is the loop's pretraining [`Objective`]; the run directory doubles as a
//! Hugging Face model directory ([`export`]) that kiln's own loader reads back.

pub mod config;
mod export;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::{Param, VarWeights};
use kiln_model::weights::Weights;
use kiln_model::{Batch as ModelBatch, CausalLM, ForwardContext, LogitsMode};
use serde::Serialize;

use super::metrics::StepMetrics;
use super::objective::{Evaluation, MicroBatch, MicroStep, Objective, Position, Trainable};
use super::run::{run_loop, LoopOptions, LoopRun, RunConfig};
use crate::data::loader::{Batch, TokenDataset, TokenShard};
use crate::data::rng::DataRng;
use crate::error::Result;
use config::TrainConfig;

/// Seed offset for the fixed evaluation windows, so they differ from the training draw.
const EVAL_SEED: u64 = 0x5eed_e7a1;

pub type TrainOptions = LoopOptions;

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub steps: u64,
    pub final_loss: f64,
    pub val_loss: Option<f64>,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
    /// Stopped early through `TrainOptions::stop`; `steps` is the last step checkpointed.
    pub interrupted: bool,
}

/// Mean next-token cross-entropy of a batch.
fn batch_loss(model: &dyn CausalLM, b: &Batch, dev: &Device) -> Result<Tensor> {
    let (inputs, targets) = b.to_tensors(dev)?;
    let batch = ModelBatch {
        input_ids: inputs,
        start_pos: 0,
        logits: LogitsMode::All,
    };
    let logits = model.forward(&batch, &mut ForwardContext::training())?;
    let v = model.config().vocab_size;
    let logits = logits.reshape((b.batch * b.ctx, v))?;
    Ok(kiln_model::kernels::train::cross_entropy(
        &logits,
        &targets.flatten_all()?,
    )?)
}

fn mean_loss(model: &dyn CausalLM, batches: &[Batch], dev: &Device) -> Result<f64> {
    let mut sum = 0.0;
    for b in batches {
        sum += batch_loss(model, b, dev)?.to_scalar::<f32>()? as f64;
    }
    Ok(sum / batches.len().max(1) as f64)
}

/// Next-token prediction on the token shards.
struct Pretraining {
    train: TokenShard,
    rng: DataRng,
    eval_train: Vec<Batch>,
    eval_val: Vec<Batch>,
    batch_size: usize,
    context: usize,
    dev: Device,
}

impl Objective for Pretraining {
    fn micro_step(
        &mut self,
        model: &dyn CausalLM,
        _vars: &[Var],
        at: MicroBatch,
    ) -> Result<MicroStep> {
        let b = self
            .train
            .sample_batch(&mut self.rng, self.batch_size, self.context)?;
        let loss = (batch_loss(model, &b, &self.dev)? / at.grad_accum as f64)?;
        Ok(MicroStep {
            grads: loss.backward()?,
            loss: loss.to_scalar::<f32>()? as f64,
            tokens: self.batch_size * self.context,
            extra: Default::default(),
        })
    }

    fn evaluate(&self, model: &dyn CausalLM) -> Result<Option<Evaluation>> {
        Ok(Some(Evaluation {
            train_loss: Some(mean_loss(model, &self.eval_train, &self.dev)?),
            loss: mean_loss(model, &self.eval_val, &self.dev)?,
            extra: Default::default(),
        }))
    }

    fn position(&self) -> Position {
        Position {
            rng: self.rng.state(),
            data: serde_json::Value::Null,
        }
    }

    fn restore(&mut self, position: &Position) -> Result<()> {
        self.rng.restore(position.rng)
    }
}

/// A model trained from scratch: every weight is a parameter; the run directory becomes the
/// model directory at the end.
struct FromScratch {
    model: Box<dyn CausalLM>,
    params: Vec<Param>,
    config: ModelConfig,
    data_dir: PathBuf,
}

impl Trainable for FromScratch {
    fn model(&self) -> &dyn CausalLM {
        &*self.model
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn model_config(&self) -> &ModelConfig {
        &self.config
    }
    fn save(&self, run: &Path, end: bool) -> Result<()> {
        if end {
            export::export(run, &self.config, &self.params, &self.data_dir)?;
        }
        Ok(())
    }
}

/// Trains as `cfg` says on `dev` into `opts.out`, calling `on_step` after every step.
pub fn train(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    dev: &Device,
    on_step: impl FnMut(&StepMetrics),
) -> Result<TrainReport> {
    let t = &cfg.train;
    let data = TokenDataset::open(&cfg.data.dir).map_err(|e| cfg.missing_data(e))?;
    let config = cfg.model_config(data.manifest.vocab_size as usize);
    let (source, params) = VarWeights::init(&config, t.seed, DType::F32, dev)?;
    let model = kiln_model::loader::build_model(&Weights::new(source), &config)?;
    let (b, ctx) = (t.batch_size, cfg.model.context);
    let eval_batches = t.eval_batches.unwrap_or_default();
    let mut objective = Pretraining {
        eval_train: data
            .train
            .eval_batches(eval_batches, b, ctx, t.seed ^ EVAL_SEED)?,
        eval_val: data
            .val
            .eval_batches(eval_batches, b, ctx, t.seed ^ EVAL_SEED)?,
        train: data.train,
        rng: DataRng::seed_from_u64(t.seed),
        batch_size: b,
        context: ctx,
        dev: dev.clone(),
    };
    let trained = FromScratch {
        model,
        params,
        config,
        data_dir: data.dir,
    };
    let run = LoopRun {
        settings: t,
        options: opts,
        // The optimisation only: the model's own configuration is checked by the checkpoint,
        // and the data directory may move.
        config: RunConfig {
            now: serde_json::json!({ "train": t }),
            upgrade: |saved| (!saved.is_null()).then(|| saved.clone()),
        },
        title: "Training loss",
    };
    let r = run_loop(&run, &trained, &mut objective, on_step)?;
    Ok(TrainReport {
        steps: r.steps,
        final_loss: r.final_loss,
        val_loss: r.eval.map(|e| e.loss),
        tokens_per_s: r.tokens_per_s,
        run_dir: r.run_dir,
        interrupted: r.interrupted,
    })
}

//! Fine-tuning a pretrained model through a LoRA adapter (`kiln finetune sft|dpo`): the
//! config, the adapted model ([`adapted::AdaptedModel`], the loop's trainable), the losses
//! (with activation checkpointing by block) and the two objectives, SFT and DPO, both run
//! by the one training loop.

pub mod adapted;
pub mod checkpointed;
pub mod config;
pub mod dpo;
pub mod dpo_loss;
pub mod loss;
pub mod sft;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use config::FinetuneConfig;
pub use dpo::finetune_dpo;
pub use sft::finetune_sft;

use super::metrics::StepMetrics;
use super::objective::Objective;
use super::run::{run_loop, LoopOptions, LoopRun, RunConfig};
use crate::data::sft::DataReport;
use crate::error::{Result, TrainError};
use adapted::AdaptedModel;

pub type FinetuneOptions = LoopOptions;

#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub steps: u64,
    pub final_loss: f64,
    pub eval_loss: Option<f64>,
    /// The last evaluation's other figures.
    pub eval_extra: BTreeMap<String, f64>,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
    pub interrupted: bool,
    pub train_data: DataReport,
    pub eval_data: Option<DataReport>,
}

/// Trains `adapted`'s adapter on `objective` as `cfg` says, into `opts.out`.
fn run_finetune(
    cfg: &FinetuneConfig,
    opts: &FinetuneOptions,
    adapted: &AdaptedModel,
    objective: &mut dyn Objective,
    data: (DataReport, Option<DataReport>),
    on_step: impl FnMut(&StepMetrics),
) -> Result<FinetuneReport> {
    let config =
        serde_json::to_value(cfg).map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    let run = LoopRun {
        settings: &cfg.train,
        options: opts,
        config: RunConfig {
            now: config,
            upgrade: config::upgrade_saved,
        },
        title: "Fine-tuning loss",
    };
    let r = run_loop(&run, adapted, objective, on_step)?;
    let (eval_loss, eval_extra) = match r.eval {
        Some(e) => (Some(e.loss), e.extra),
        None => (None, BTreeMap::new()),
    };
    Ok(FinetuneReport {
        steps: r.steps,
        final_loss: r.final_loss,
        eval_loss,
        eval_extra,
        tokens_per_s: r.tokens_per_s,
        run_dir: r.run_dir,
        interrupted: r.interrupted,
        train_data: data.0,
        eval_data: data.1,
    })
}

/// `run/data_report.json`: what the data preparation kept, cut and dropped.
fn write_data_report(run: &std::path::Path, report: &DataReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    Ok(kiln_model::atomic::write_bytes_atomic(
        &run.join("data_report.json"),
        text.as_bytes(),
    )?)
}

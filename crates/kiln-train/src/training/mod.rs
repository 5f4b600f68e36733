//! Training: the one loop ([`run::run_loop`]) and the runs made of it. A run is a
//! [`Trainable`] (a model trained from scratch, or a LoRA adapter on a frozen base) and an
//! [`Objective`] (pretraining's next-token loss on token shards, SFT's masked loss, DPO's
//! preference loss), with one `[train]` section ([`settings::TrainSettings`]) for all of
//! them, checkpoints that resume bit for bit, `metrics.jsonl` and a loss plot.
//!
//! ```text
//! TrainConfig ──pretrain::train──┐
//! FinetuneConfig ──finetune_sft──┼──▶ run_loop(settings, Trainable, Objective) ──▶ run dir
//! FinetuneConfig ──finetune_dpo──┘      lr → micro-steps → clip → step → log → eval → checkpoint
//! ```

pub mod checkpoint;
pub mod config_error;
pub mod finetune;
pub mod flops;
pub mod metrics;
pub mod objective;
pub mod pretrain;
pub mod run;
pub mod settings;

pub use metrics::StepMetrics;
pub use objective::{Evaluation, MicroBatch, MicroStep, Objective, Position, Trainable};
pub use run::{run_loop, LoopOptions, LoopReport, LoopRun, RunConfig};
pub use settings::{TrainSettings, FINE_TUNING, PRETRAINING};

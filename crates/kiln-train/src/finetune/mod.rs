//! Fine-tuning a pretrained model through a LoRA adapter: the config, the losses, the
//! shared loop and the methods (SFT, DPO). The loop features are the pretraining loop's
//! (warmup-cosine AdamW, clipping, accumulation, held-out eval, atomic checkpoints with
//! exact resume, metrics.jsonl and plots); what differs is the data (JSONL examples with
//! loss masks, or preference pairs), the parameters (only the adapter's factors) and the
//! loss ([`objective::Objective`]).

pub mod checkpointed;
pub mod config;
pub mod dpo;
pub mod dpo_loss;
pub mod loss;
pub mod merge;
pub mod objective;
pub mod pair_sampler;
pub mod prefs;
pub mod run;
pub mod sft;

pub use config::FinetuneConfig;
pub use dpo::finetune_dpo;
pub use run::{FinetuneOptions, FinetuneReport};
pub use sft::finetune_sft;

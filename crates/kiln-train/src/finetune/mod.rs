//! Fine-tuning a pretrained model through a LoRA adapter: the config, the losses and the
//! loops. The loop features are the pretraining loop's (warmup-cosine AdamW, clipping,
//! accumulation, held-out eval, atomic checkpoints with exact resume, metrics.jsonl and
//! plots); what differs is the data (JSONL examples with loss masks), the parameters (only
//! the adapter's factors) and the loss.

pub mod checkpointed;
pub mod config;
pub mod loss;
pub mod sft;

pub use config::FinetuneConfig;
pub use sft::{finetune_sft, FinetuneOptions, FinetuneReport};

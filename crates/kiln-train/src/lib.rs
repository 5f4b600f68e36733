//! kiln's training stage: tokenizers trained from a corpus, token shards on disk, the
//! random-window loader a training loop draws batches from, and the optimizer pieces
//! (AdamW, the warmup-cosine schedule, global-norm clipping).
//!
//! ```text
//! corpus ──train_tokenizer──▶ tokenizer.json (byte-level BPE or characters; HF format)
//! corpus + tokenizer.json ──prepare──▶ dir/{train.bin, val.bin, manifest.json, tokenizer.json}
//! dir ──TokenDataset::open──▶ TokenShard::sample_batch(&mut DataRng, b, ctx) ──▶ Batch
//! ```

pub mod ablate;
pub mod adamw;
pub mod char_tokenizer;
pub mod checkpoint;
pub mod clip;
mod corpus;
pub mod encode;
pub mod error;
pub mod finetune;
pub mod flops;
pub mod loader;
pub mod manifest;
pub mod plot;
pub mod rng;
pub mod scaling_fit;
pub mod schedule;
pub mod sft_data;
pub mod shards;
pub mod study;
pub mod sweep;
pub mod tokenizer_train;
pub mod train_config;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig};
pub use char_tokenizer::CharTokenizer;
pub use clip::{clip_grad_norm, clip_scale, grad_norm};
pub use corpus::{read_corpus, read_text, SourceText};
pub use error::{Result, TrainError};
pub use loader::{Batch, TokenDataset, TokenShard};
pub use manifest::{Dtype, Manifest, SourceInfo, Split, SplitInfo, TokenizerInfo};
pub use rng::{DataRng, DataRngState};
pub use schedule::CosineSchedule;
pub use shards::{prepare, PrepareOptions, PrepareProgress};
pub use tokenizer_train::{
    load_tokenizer, save_tokenizer, train_on_texts, train_tokenizer, vocab_size, TokenizerKind,
    TokenizerSpec, TrainedTokenizer, ENDOFTEXT,
};
pub use train_config::TrainConfig;
pub use trainer::{train, StepMetrics, TrainOptions, TrainReport};

//! kiln's training stage: tokenizers trained from a corpus and the data a run reads
//! ([`data`]: token shards and their loader, fine-tuning examples, preference pairs), the
//! optimizer pieces ([`optim`]), the one training loop and its objectives (pretraining, SFT,
//! DPO: [`training`]), comparison studies (ablations, scaling sweeps, plots: [`study`]),
//! and merging a LoRA adapter into its base ([`merge`]).

pub mod data;
pub mod error;
pub mod merge;
pub mod optim;
pub mod study;
pub mod training;

pub use data::char_tokenizer::CharTokenizer;
pub use data::corpus::{read_corpus, read_text, SourceText};
pub use data::loader::{Batch, TokenDataset, TokenShard};
pub use data::manifest::{Dtype, Manifest, SourceInfo, Split, SplitInfo, TokenizerInfo};
pub use data::rng::{DataRng, DataRngState};
pub use data::shards::{prepare, PrepareOptions, PrepareProgress};
pub use data::tokenizer_train::{
    load_tokenizer, save_tokenizer, train_on_texts, train_tokenizer, vocab_size, TokenizerKind,
    TokenizerSpec, TrainedTokenizer, ENDOFTEXT,
};
pub use error::{Result, TrainError};
pub use optim::adamw::{AdamW, AdamWConfig};
pub use optim::clip::{clip_grad_norm, clip_scale, grad_norm};
pub use optim::schedule::CosineSchedule;
pub use training::finetune::{
    finetune_dpo, finetune_sft, FinetuneConfig, FinetuneOptions, FinetuneReport,
};
pub use training::pretrain::config::TrainConfig;
pub use training::pretrain::{train, TrainOptions, TrainReport};
pub use training::StepMetrics;

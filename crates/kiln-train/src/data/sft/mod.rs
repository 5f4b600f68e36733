//! Fine-tuning data: JSONL examples (chat, prompt/completion or text) tokenized with the
//! model's tokenizer and chat template into ids plus a loss mask, cut to a maximum length
//! with an account of what was cut, and served as padded (length-bucketed) or packed
//! batches from a seeded, resumable sampler.
//!
//! ```text
//! train.jsonl ──read_sft_jsonl──▶ [SftRecord] ──prepare_examples(SftTokenizer, max_len)──▶
//!   ([TokenizedExample], DataReport) ──SftSampler::new──▶ next_batch() ──▶ SftBatch
//! ```

mod batch;
mod prepare;
mod record;
mod sampler;
mod tokenize;

#[cfg(test)]
mod sampler_tests;
#[cfg(test)]
mod tokenize_tests;

pub use batch::{eval_batches, SftBatch};
pub use prepare::{prepare_examples, DataReport};
pub use record::{parse_sft_jsonl, read_sft_jsonl, SftExample, SftRecord, CHAT_ROLES};
pub use sampler::{Batching, DataPosition, SamplerConfig, SftSampler};
pub use tokenize::{SftTokenizer, TokenizedExample, TrainOn};

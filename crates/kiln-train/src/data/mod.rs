//! Training data: corpora and the tokenizers trained on them, token shards on disk with
//! their manifest and the random-window loader that draws pretraining batches from them
//! (seeded, saveable RNG), fine-tuning examples with loss masks ([`sft`]), and preference
//! pairs with their sampler.
//!
//! ```text
//! corpus ──train_tokenizer──▶ tokenizer.json (byte-level BPE or characters; HF format)
//! corpus + tokenizer.json ──prepare──▶ dir/{train.bin, val.bin, manifest.json, tokenizer.json}
//! dir ──TokenDataset::open──▶ TokenShard::sample_batch(&mut DataRng, b, ctx) ──▶ Batch
//! train.jsonl ──read_sft_jsonl──▶ SftTokenizer ──▶ SftSampler::next_batch ──▶ SftBatch
//! prefs.jsonl ──read_pairs──▶ prepare_pairs ──▶ PairSampler::next_batch
//! ```

pub mod char_tokenizer;
pub(crate) mod corpus;
pub mod encode;
pub mod loader;
pub mod manifest;
pub mod pair_sampler;
pub mod prefs;
pub mod rng;
pub mod sft;
pub mod shards;
pub mod tokenizer_train;

//! kiln's model layer: the [`CausalLM`] contract and the Llama-family model behind it,
//! weights from safetensors or GGUF (quantized kept quantized), LoRA adapters in PEFT's
//! layout, tokenizers, [`ChatPrompt`] (the one way conversations become tokens), sampling,
//! kiln's CPU kernels, and [`atomic`] file writes for every crate above.

pub mod atomic;
pub mod causal_lm;
pub mod chat;
pub mod config;
pub mod error;
pub mod generation;
pub mod kernels;
pub mod kv_cache;
pub mod layers;
pub mod llama;
pub mod loader;
pub mod lora;
pub mod paged_kv;
pub mod params;
pub mod perplexity;
pub mod sampling;
pub mod stop;
pub mod tiny;
pub mod tokenizer;
pub mod weights;

pub use causal_lm::{Batch, CausalLM, ForwardContext, LayerCache, LogitsMode, PagedStep};
pub use chat::{ChatFormat, ChatMessage, ChatPrompt, ChatTemplate};
pub use config::{HfLlamaConfig, ModelConfig};
pub use error::{ModelError, Result};
pub use generation::{generate, sample_completions, FinishReason, GenerateOptions, Generation};
pub use kv_cache::KvCache;
pub use llama::Llama;
pub use loader::{load, load_tokenizer, LoadedModel, ModelInfo};
pub use paged_kv::{PagedKvCache, PagedSeq, SeqLogits};
pub use sampling::{LogitsProcessor, SamplingParams};
pub use tokenizer::Tokenizer;

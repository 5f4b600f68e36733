//! kiln's serving engine: requests become sequences that a continuous-batching scheduler
//! steps through one model (chunked prefill mixed with decodes, paged KV cache, prefix
//! caching), and each request streams its tokens back through an [`EngineHandle`].
//! Knows nothing of HTTP.

pub mod block_hash;
pub mod block_pool;
pub mod config;
pub mod engine;
mod engine_loop;
pub mod error;
pub mod handle;
pub mod kv_cache_manager;
pub mod logprobs;
mod model_runner;
pub mod output;
mod output_stream;
pub mod request;
pub mod scheduler;
pub mod sequence;
pub mod stats;

pub use config::EngineConfig;
pub use engine::start;
pub use error::{EngineError, Result};
pub use handle::{EngineHandle, RequestStream};
pub use output::{EngineEvent, FinishReason, TokenLogprob, Usage};
pub use request::{EngineRequest, RequestId};
pub use stats::StatsSnapshot;

//! A load generator for OpenAI-compatible servers (`kiln bench serve`): kiln's own,
//! llama.cpp's `llama-server`, vLLM, or a hosted API. It streams completions at fixed
//! concurrency levels and reports throughput and TTFT / inter-token latency percentiles.
//!
//! prompts (synthetic, ~P tokens) → client (one streamed request through kiln-lm's stream;
//! timing measures it)
//! → run (levels of N requests, C in flight, one time bound) → report (table / JSON).
//! probe is the sequential prefix-cache TTFT comparison; target builds and guards the URL.

mod client;
mod error;
mod probe;
mod prompts;
mod report;
mod run;
mod stats;
mod target;
mod timing;

pub use client::{Client, ClientConfig};
pub use error::LoadgenError;
pub use kiln_lm::endpoint::sse::{parse_chunk, Chunk, SseDecoder, SseEvent};
pub use probe::{prefix_cache_probe, render_probe, ProbeReport};
pub use prompts::PromptSet;
pub use report::{render_table, LevelReport, LoadReport};
pub use run::{run_load, LoadConfig};
pub use stats::{percentile, Percentiles};
pub use target::{checked_url, endpoint_url, is_loopback, Endpoint};
pub use timing::{RequestRecord, RequestTimer};

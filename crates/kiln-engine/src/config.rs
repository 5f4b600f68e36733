use serde::{Deserialize, Serialize};

/// Engine limits. Defaults suit a small model on a few CPU cores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Tokens per KV-cache block.
    pub block_size: usize,
    /// Memory for keys and values, in MiB; sets the number of blocks.
    pub kv_cache_mb: usize,
    /// Sequences decoding at once, at most.
    pub max_num_seqs: usize,
    /// Tokens (prefill chunks plus decodes) per model step, at most.
    pub max_num_batched_tokens: usize,
    /// Requests waiting for admission, at most; more are refused (`QueueFull`).
    pub max_queue: usize,
    /// Reuse the keys and values of full prompt blocks seen before.
    pub enable_prefix_caching: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            kv_cache_mb: 512,
            max_num_seqs: 16,
            max_num_batched_tokens: 512,
            max_queue: 256,
            enable_prefix_caching: true,
        }
    }
}

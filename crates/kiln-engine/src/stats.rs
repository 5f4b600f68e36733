//! Counters the engine thread updates and anyone holding a handle reads (`/metrics`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct EngineStats {
    pub waiting: AtomicU64,
    pub running: AtomicU64,
    pub kv_blocks_used: AtomicU64,
    pub kv_blocks_total: AtomicU64,
    /// Prompt tokens looked up in the prefix cache, and how many of them were found.
    pub prefix_queried_tokens: AtomicU64,
    pub prefix_hit_tokens: AtomicU64,
    pub preemptions: AtomicU64,
    pub steps: AtomicU64,
    pub prompt_tokens_computed: AtomicU64,
    pub generated_tokens: AtomicU64,
}

/// A consistent-enough copy of [`EngineStats`] for reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub waiting: u64,
    pub running: u64,
    pub kv_blocks_used: u64,
    pub kv_blocks_total: u64,
    pub prefix_queried_tokens: u64,
    pub prefix_hit_tokens: u64,
    /// Hit tokens over queried tokens (0 before any query).
    pub prefix_hit_rate: f64,
    pub preemptions: u64,
    pub steps: u64,
    pub prompt_tokens_computed: u64,
    pub generated_tokens: u64,
}

impl EngineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let q = self.prefix_queried_tokens.load(Relaxed);
        let h = self.prefix_hit_tokens.load(Relaxed);
        StatsSnapshot {
            waiting: self.waiting.load(Relaxed),
            running: self.running.load(Relaxed),
            kv_blocks_used: self.kv_blocks_used.load(Relaxed),
            kv_blocks_total: self.kv_blocks_total.load(Relaxed),
            prefix_queried_tokens: q,
            prefix_hit_tokens: h,
            prefix_hit_rate: if q == 0 { 0.0 } else { h as f64 / q as f64 },
            preemptions: self.preemptions.load(Relaxed),
            steps: self.steps.load(Relaxed),
            prompt_tokens_computed: self.prompt_tokens_computed.load(Relaxed),
            generated_tokens: self.generated_tokens.load(Relaxed),
        }
    }
}

//! Starting an engine: the model moves onto its own thread, which runs the step loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use kiln_model::{CausalLM, LoadedModel, PagedKvCache};

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::handle::{EngineHandle, ModelMeta, Shared};
use crate::stats::EngineStats;

/// Loads nothing itself: takes a loaded model, starts its engine thread and returns the
/// handle. `name` is the model's name in the API.
pub fn start(loaded: LoadedModel, name: &str, config: EngineConfig) -> Result<EngineHandle> {
    if config.block_size == 0 || config.max_num_seqs == 0 || config.max_num_batched_tokens == 0 {
        return Err(EngineError::InvalidParameter(
            "block_size, max_num_seqs and max_num_batched_tokens must be at least 1".into(),
        ));
    }
    let mcfg = loaded.model.config().clone();
    let block_bytes = PagedKvCache::bytes_per_token(&mcfg) * config.block_size;
    let num_blocks = config.kv_cache_mb * (1 << 20) / block_bytes;
    if num_blocks == 0 {
        return Err(EngineError::InvalidParameter(format!(
            "kv_cache_mb {} holds no block of {} tokens ({} bytes each)",
            config.kv_cache_mb, config.block_size, block_bytes
        )));
    }
    let stats = Arc::new(EngineStats::default());
    stats
        .kv_blocks_total
        .store(num_blocks as u64, Ordering::Relaxed);
    let chat = loaded.chat_prompt()?;
    let tokenizer = Arc::new(loaded.tokenizer);
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        meta: ModelMeta {
            name: name.to_string(),
            context_length: mcfg.max_position_embeddings,
            tokenizer: tokenizer.clone(),
            chat,
        },
        config: config.clone(),
        stats: stats.clone(),
        next_id: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        tx: Mutex::new(tx),
        thread: Mutex::new(None),
    });
    let (model, device) = (loaded.model, loaded.device);
    let thread = std::thread::Builder::new()
        .name(format!("kiln-engine-{name}"))
        .spawn(move || {
            let mut engine_loop = crate::engine_loop::EngineLoop::new(
                model, device, tokenizer, config, num_blocks, stats,
            );
            engine_loop.run(rx);
        })
        .map_err(|e| EngineError::InvalidParameter(format!("cannot start engine thread: {e}")))?;
    if let Ok(mut t) = shared.thread.lock() {
        *t = Some(thread);
    }
    Ok(EngineHandle { shared })
}

//! The engine on a tiny random Llama (no download): streamed greedy tokens equal
//! single-stream generation, also with many requests in flight at once; cancellation and
//! shutdown.

use kiln_engine::{EngineConfig, EngineEvent, EngineHandle, EngineRequest, FinishReason};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_model::{generate, GenerateOptions, SamplingParams};
use kiln_testing::engine::{collect, prompt_logprobs, submit_score};

fn tiny_engine(config: EngineConfig) -> (tempfile::TempDir, EngineHandle) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), &TinyLlamaSpec::default()).unwrap();
    let loaded = kiln_model::load(dir.path(), &candle_core::Device::Cpu).unwrap();
    (dir, kiln_engine::start(loaded, "tiny", config).unwrap())
}

/// Greedy tokens from the single-stream generate loop.
fn reference(dir: &std::path::Path, prompt: &[u32], n: usize) -> Vec<u32> {
    let loaded = kiln_model::load(dir, &candle_core::Device::Cpu).unwrap();
    let opts = GenerateOptions {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    generate(
        &loaded.model,
        &loaded.tokenizer,
        prompt,
        &opts,
        &loaded.device,
        |_| {},
    )
    .unwrap()
    .token_ids
}

fn prompts() -> Vec<Vec<u32>> {
    (0..8u32)
        .map(|i| {
            (0..(3 + 5 * i))
                .map(|j| 1 + (i * 31 + j * 7) % 250)
                .collect()
        })
        .collect()
}

#[test]
fn concurrent_greedy_requests_match_single_stream_generation() {
    let (dir, engine) = tiny_engine(EngineConfig::default());
    let mut streams: Vec<_> = prompts()
        .into_iter()
        .map(|p| {
            let mut r = EngineRequest::greedy(p.clone(), 12);
            r.stop_at_eos = false;
            (p, engine.submit(r).unwrap())
        })
        .collect();
    for (p, s) in &mut streams {
        let (ids, reason) = collect(s);
        assert_eq!(reason, FinishReason::Length);
        assert_eq!(ids, reference(dir.path(), p, 12), "prompt {p:?}");
    }
    engine.shutdown_and_join();
    let stats = engine.stats();
    assert_eq!(
        (stats.waiting, stats.running, stats.kv_blocks_used),
        (0, 0, 0)
    );
}

#[test]
fn dropping_a_stream_cancels_it_and_the_engine_goes_on() {
    let (_dir, engine) = tiny_engine(EngineConfig::default());
    let mut long = EngineRequest::greedy(vec![5, 6, 7], 200);
    long.stop_at_eos = false;
    let mut dropped = engine.submit(long.clone()).unwrap();
    assert!(matches!(
        dropped.blocking_recv(),
        Some(EngineEvent::Token { .. })
    ));
    drop(dropped);
    let mut short = EngineRequest::greedy(vec![9, 10], 4);
    short.stop_at_eos = false;
    let (ids, _) = collect(&mut engine.submit(short).unwrap());
    assert_eq!(ids.len(), 4);
    engine.shutdown_and_join();
    assert_eq!(engine.stats().kv_blocks_used, 0);
    assert!(
        engine.submit(long).is_err(),
        "a stopped engine refuses requests"
    );
}

/// Prompt log-probabilities of `tokens` from index `from`, and the prompt tokens the prefix
/// cache served.
fn score(engine: &EngineHandle, tokens: Vec<u32>, from: usize) -> (Vec<(u32, f32)>, usize) {
    prompt_logprobs(&mut submit_score(engine, tokens, from))
}

#[test]
fn continuations_scored_after_a_shared_context_reuse_it_and_score_as_in_full() {
    let (_dir, engine) = tiny_engine(EngineConfig::default());
    let context: Vec<u32> = (0..40u32).map(|j| 1 + (j * 13) % 250).collect();
    for (i, cont) in [vec![5u32, 6, 7], vec![9, 10, 11, 12], vec![200]]
        .into_iter()
        .enumerate()
    {
        let tokens: Vec<u32> = context.iter().chain(&cont).copied().collect();
        let (full, full_cached) = score(&engine, tokens.clone(), 0);
        assert_eq!(
            full_cached, 0,
            "scoring every token takes nothing from the cache"
        );
        assert_eq!(full.len(), tokens.len() - 1);
        let (tail, cached) = score(&engine, tokens, context.len());
        // The full scoring above cached the context's first two 16-token blocks.
        assert_eq!(cached, 32, "continuation {i}");
        assert_eq!(tail, full[context.len() - 1..], "continuation {i}");
    }
    engine.shutdown_and_join();
}

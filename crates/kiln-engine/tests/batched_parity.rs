//! The serving engine's batched, paged decoding gives the same greedy tokens as
//! single-stream generation, for 8 different prompts in flight at once on SmolLM2-135M
//! Q4_1 (different lengths, so prefill chunks and decodes share steps).

use kiln_engine::{EngineConfig, EngineEvent, EngineRequest};
use kiln_model::{generate, GenerateOptions, SamplingParams};

const PROMPTS: [&str; 8] = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "def fibonacci(n):",
    "List three colours:",
    "Water boils at",
    "In 1969, the first humans to walk on the Moon were",
    "The quick brown fox",
    "Photosynthesis is the process by which plants turn sunlight, water and carbon dioxide into",
];

const NEW_TOKENS: usize = 40;

fn check(budget: usize) {
    let Some(path) = kiln_testing::smollm2() else {
        return;
    };
    let dev = candle_core::Device::Cpu;
    let single = kiln_model::load(&path, &dev).unwrap();
    let encode = |p: &str| single.tokenizer.encode(p, true, false).unwrap();
    let opts = GenerateOptions {
        max_tokens: NEW_TOKENS,
        sampling: SamplingParams::greedy(),
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let want: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| {
            generate(
                &single.model,
                &single.tokenizer,
                &encode(p),
                &opts,
                &dev,
                |_| {},
            )
            .unwrap()
            .token_ids
        })
        .collect();
    let config = EngineConfig {
        max_num_batched_tokens: budget,
        ..EngineConfig::default()
    };
    let engine =
        kiln_engine::start(kiln_model::load(&path, &dev).unwrap(), "smollm2", config).unwrap();
    let mut streams: Vec<_> = PROMPTS
        .iter()
        .map(|p| {
            let mut r = EngineRequest::greedy(encode(p), NEW_TOKENS);
            r.stop_at_eos = false;
            engine.submit(r).unwrap()
        })
        .collect();
    for (i, s) in streams.iter_mut().enumerate() {
        let mut got = vec![];
        while let Some(ev) = s.blocking_recv() {
            match ev {
                EngineEvent::Token { id, .. } => got.push(id),
                EngineEvent::Finished { .. } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            got, want[i],
            "prompt {i} ({:?}), budget {budget}",
            PROMPTS[i]
        );
    }
    let stats = engine.stats();
    assert!(
        stats.steps < (8 * NEW_TOKENS) as u64,
        "requests were batched: {stats:?}"
    );
    engine.shutdown_and_join();
    assert_eq!(engine.stats().kv_blocks_used, 0);
}

#[test]
fn batched_paged_greedy_equals_single_stream() {
    check(512);
}

#[test]
fn chunked_prefill_greedy_equals_single_stream() {
    check(24);
}

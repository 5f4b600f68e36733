//! Multiple-choice scoring as `kiln eval` drives the engine: every choice of every question
//! in flight at once (shared contexts, so the prefix cache serves later choices) beside
//! greedy generations from the same contexts, a small token budget (chunked prefill) and a KV
//! pool too small for all of them (the generations' growth preempts). Each choice's
//! log-probabilities and each generation's tokens must equal those of the request alone.

use kiln_engine::{EngineConfig, EngineHandle, EngineRequest, RequestStream};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_testing::engine::{collect, prompt_logprobs, submit_score};

/// Deeper than the default tiny model so that 1 MiB of cache holds only 32 blocks of 8
/// (256 positions): two long prompts in flight do not fit. Query heads share KV heads in
/// groups of four, as SmolLM2's do in threes.
fn spec() -> TinyLlamaSpec {
    TinyLlamaSpec {
        hidden: 256,
        layers: 16,
        heads: 8,
        kv_heads: 2,
        intermediate: 256,
        context: 256,
        ..TinyLlamaSpec::default()
    }
}

fn engine(dir: &std::path::Path, config: EngineConfig) -> EngineHandle {
    let loaded = kiln_model::load(dir, &candle_core::Device::Cpu).unwrap();
    kiln_engine::start(loaded, "tiny", config).unwrap()
}

fn generate(engine: &EngineHandle, tokens: Vec<u32>) -> RequestStream {
    let mut r = EngineRequest::greedy(tokens, GENERATED);
    r.stop_at_eos = false;
    engine.submit(r).unwrap()
}

const GENERATED: usize = 40;

fn tokens(stream: &mut RequestStream) -> Vec<u32> {
    collect(stream).0
}

fn logprobs(stream: &mut RequestStream) -> Vec<f32> {
    prompt_logprobs(stream)
        .0
        .into_iter()
        .map(|(_, lp)| lp)
        .collect()
}

/// A small deterministic generator (xorshift), so the workload needs no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Questions of a context (60 to 199 tokens) and four continuations (2 to 24 tokens), some
/// starting alike, as HellaSwag's endings often do.
fn questions(n: usize, seed: u64) -> Vec<(Vec<u32>, Vec<Vec<u32>>)> {
    let mut rng = Rng(seed);
    let tok = |rng: &mut Rng| 1 + rng.below(250) as u32;
    (0..n)
        .map(|_| {
            let ctx_len = 60 + rng.below(140) as usize;
            let ctx: Vec<u32> = (0..ctx_len).map(|_| tok(&mut rng)).collect();
            let shared: Vec<u32> = (0..1 + rng.below(4)).map(|_| tok(&mut rng)).collect();
            let conts = (0..4)
                .map(|c| {
                    let len = 2 + rng.below(23) as usize;
                    let mut cont: Vec<u32> = if c > 0 && rng.below(2) == 0 {
                        shared.clone()
                    } else {
                        vec![]
                    };
                    cont.extend((cont.len()..len).map(|_| tok(&mut rng)));
                    cont
                })
                .collect();
            (ctx, conts)
        })
        .collect()
}

#[test]
fn choices_scored_together_under_memory_pressure_score_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), &spec()).unwrap();
    let questions = questions(16, 0x5eed_cafe);

    // Alone: one request at a time, no prefix cache, the whole prompt in one step.
    let alone = engine(
        dir.path(),
        EngineConfig {
            enable_prefix_caching: false,
            max_num_batched_tokens: 256,
            ..EngineConfig::default()
        },
    );
    let expected: Vec<Vec<Vec<f32>>> = questions
        .iter()
        .map(|(ctx, conts)| {
            conts
                .iter()
                .map(|c| {
                    let tokens = [ctx.as_slice(), c].concat();
                    logprobs(&mut submit_score(&alone, tokens, ctx.len()))
                })
                .collect()
        })
        .collect();
    let expected_gen: Vec<Vec<u32>> = questions
        .iter()
        .map(|(ctx, _)| tokens(&mut generate(&alone, ctx.clone())))
        .collect();
    alone.shutdown_and_join();

    let busy = engine(
        dir.path(),
        EngineConfig {
            block_size: 8,
            kv_cache_mb: 1,
            max_num_seqs: 16,
            max_num_batched_tokens: 128,
            ..EngineConfig::default()
        },
    );
    let mut gens = vec![];
    let mut streams: Vec<Vec<RequestStream>> = questions
        .iter()
        .map(|(ctx, conts)| {
            gens.push(generate(&busy, ctx.clone()));
            conts
                .iter()
                .map(|c| submit_score(&busy, [ctx.as_slice(), c].concat(), ctx.len()))
                .collect()
        })
        .collect();
    for (q, (streams, want)) in streams.iter_mut().zip(&expected).enumerate() {
        for (c, (s, want)) in streams.iter_mut().zip(want).enumerate() {
            let got = logprobs(s);
            assert_eq!(got.len(), want.len(), "question {q} choice {c}");
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-3,
                    "question {q} choice {c} token {i}: {g} batched, {w} alone"
                );
            }
        }
    }
    for (q, (g, want)) in gens.iter_mut().zip(&expected_gen).enumerate() {
        assert_eq!(&tokens(g), want, "question {q}'s generation");
    }
    busy.shutdown_and_join();
    let stats = busy.stats();
    eprintln!(
        "preemptions {}, prefix hits {} tokens",
        stats.preemptions, stats.prefix_hit_tokens
    );
    assert!(stats.preemptions > 0, "the pool was meant to run short");
    assert!(
        stats.prefix_hit_tokens > 0,
        "later choices reuse the context"
    );
}

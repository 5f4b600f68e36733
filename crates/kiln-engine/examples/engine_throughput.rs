//! In-process engine throughput (no HTTP): C concurrent greedy requests of P prompt tokens
//! and G new tokens each, on a model file. For profiling the engine itself; the
//! end-to-end benchmark against llama.cpp's server is `kiln bench serve`.
//!
//! cargo run --release -p kiln-engine --example engine_throughput -- MODEL [C] [P] [G]

use std::time::Instant;

use kiln_engine::{EngineConfig, EngineEvent, EngineRequest};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: engine_throughput MODEL [CONCURRENCY] [PROMPT_TOKENS] [GEN_TOKENS]");
        std::process::exit(2);
    };
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (c, p, g) = (num(2, 8), num(3, 128), num(4, 128));
    let loaded = kiln_model::load(path.as_ref(), &candle_core::Device::Cpu).expect("model");
    let engine = kiln_engine::start(loaded, "m", EngineConfig::default()).expect("engine");
    for round in 0..2 {
        let t0 = Instant::now();
        let mut streams: Vec<_> = (0..c)
            .map(|i| {
                let prompt =
                    (0..p).map(|j| 100 + ((i * 7919 + j * 31 + round * 13) % 20000) as u32);
                let mut r = EngineRequest::greedy(prompt.collect(), g);
                r.stop_at_eos = false;
                engine.submit(r).expect("submit")
            })
            .collect();
        let mut first = vec![];
        let mut tokens = 0;
        for s in &mut streams {
            let mut seen = false;
            while let Some(ev) = s.blocking_recv() {
                match ev {
                    EngineEvent::Token { .. } => {
                        if !seen {
                            first.push(t0.elapsed().as_secs_f64());
                            seen = true;
                        }
                        tokens += 1;
                    }
                    EngineEvent::Finished { .. } => break,
                    _ => {}
                }
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let stats = engine.stats();
        println!(
            "round {round}: {c} x ({p} + {g}) tokens: {tokens} generated in {wall:.2} s = {:.1} tok/s; mean TTFT {:.3} s; steps {}",
            tokens as f64 / wall,
            first.iter().sum::<f64>() / first.len().max(1) as f64,
            stats.steps
        );
    }
    engine.shutdown_and_join();
}

//! The engine under test: a tiny model behind it, and reading a request's events to the
//! end.

use kiln_engine::{EngineEvent, EngineHandle, EngineRequest, FinishReason, RequestStream};

/// The generated tokens and why generation ended.
pub fn collect(stream: &mut RequestStream) -> (Vec<u32>, FinishReason) {
    let mut ids = vec![];
    loop {
        match stream.blocking_recv() {
            Some(EngineEvent::Token { id, .. }) => ids.push(id),
            Some(EngineEvent::Finished { reason, usage }) => {
                assert_eq!(usage.completion_tokens, ids.len());
                return (ids, reason);
            }
            Some(EngineEvent::Error(e)) => panic!("engine error: {e}"),
            Some(EngineEvent::PromptLogprobs(_)) => {}
            None => panic!("stream ended without Finished"),
        }
    }
}

/// Submits `tokens` to be scored from index `from` (nothing generated).
pub fn submit_score(engine: &EngineHandle, tokens: Vec<u32>, from: usize) -> RequestStream {
    let mut r = EngineRequest::greedy(tokens, 0);
    r.prompt_logprobs = Some(0);
    r.prompt_logprobs_from = from;
    engine.submit(r).unwrap()
}

/// A scoring request's (token, log-probability) pairs and the prompt tokens the prefix cache
/// served.
pub fn prompt_logprobs(stream: &mut RequestStream) -> (Vec<(u32, f32)>, usize) {
    let mut lps = None;
    loop {
        match stream.blocking_recv() {
            Some(EngineEvent::PromptLogprobs(l)) => {
                lps = Some(l.iter().map(|t| (t.token, t.logprob)).collect())
            }
            Some(EngineEvent::Finished { usage, .. }) => {
                return (lps.expect("no prompt logprobs"), usage.cached_tokens)
            }
            Some(EngineEvent::Error(e)) => panic!("engine error: {e}"),
            Some(EngineEvent::Token { .. }) => panic!("max_tokens 0 generated a token"),
            None => panic!("stream ended without Finished"),
        }
    }
}

/// A directory holding kiln's tiny random Llama (HF layout, ChatML template).
pub fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    kiln_model::tiny::write_tiny_llama(dir.path(), &Default::default())
        .expect("writing the tiny model");
    dir
}

/// The model at `dir` behind an engine with the default configuration.
pub fn start_engine(dir: &std::path::Path, name: &str) -> EngineHandle {
    let loaded = kiln_model::load(dir, &candle_core::Device::Cpu).expect("loading the tiny model");
    kiln_engine::start(loaded, name, Default::default()).expect("starting the engine")
}

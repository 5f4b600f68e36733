//! The local backend on a tiny random Llama: each choice's score is the sum of its
//! continuation tokens' log-probabilities, checked against a plain full-sequence forward
//! (contiguous cache, every position's logits, log-softmax in f64), whether the choices
//! share their context (prefix-cache path) or not; then a task run end to end.

use candle_core::Device;
use kiln_engine::EngineConfig;
use kiln_eval::backend::split_request;
use kiln_eval::{
    load_task, run_task, LocalBackend, LoglikBackend, LoglikRequest, McItem, RunOptions,
};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};

fn reference(model: &kiln_model::LoadedModel, r: &LoglikRequest) -> f64 {
    let t = split_request(&model.tokenizer, r).unwrap();
    let batch = Batch::from_tokens(&t.tokens, 0, LogitsMode::All, &Device::Cpu).unwrap();
    let mut cache = model.model.new_cache();
    let logits = model
        .model
        .forward(&batch, &mut ForwardContext::with_cache(&mut cache))
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    (t.context_len..t.tokens.len())
        .map(|i| {
            let row = &logits[i - 1];
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            row[t.tokens[i] as usize] as f64 - lse
        })
        .sum()
}

fn item(doc_id: usize, pairs: &[(&str, &str)], gold: usize) -> McItem {
    McItem {
        doc_id,
        native_id: serde_json::Value::Null,
        choices: pairs
            .iter()
            .map(|(c, k)| LoglikRequest {
                context: c.to_string(),
                continuation: k.to_string(),
            })
            .collect(),
        gold,
    }
}

fn setup() -> (tempfile::TempDir, kiln_model::LoadedModel, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), &TinyLlamaSpec::default()).unwrap();
    let reference_model = kiln_model::load(dir.path(), &Device::Cpu).unwrap();
    let loaded = kiln_model::load(dir.path(), &Device::Cpu).unwrap();
    let engine = kiln_engine::start(loaded, "tiny", EngineConfig::default()).unwrap();
    (
        dir,
        reference_model,
        LocalBackend::new(engine, serde_json::json!({"model": "tiny"})),
    )
}

#[test]
fn scores_are_continuation_log_likelihoods_with_and_without_a_shared_context() {
    let (_dir, model, backend) = setup();
    // A context longer than one 16-token block, so the prefix cache serves part of it.
    let ctx = "The quick brown fox jumps over the lazy dog and then it runs away. Answer:";
    let shared = item(
        0,
        &[(ctx, " yes"), (ctx, " no, never"), (ctx, " maybe so")],
        0,
    );
    let partial = item(
        1,
        &[
            ("Sarah helped Maria so Sarah", " was thanked."),
            ("Sarah helped Maria so Maria", " was thanked."),
        ],
        1,
    );
    for it in [&shared, &partial, &shared] {
        let scores = backend.score(it).unwrap();
        assert_eq!(scores.len(), it.choices.len());
        for (s, c) in scores.iter().zip(&it.choices) {
            let want = reference(&model, c);
            // f32 logits summed in f32 by the engine vs f64 here.
            assert!(
                (s.logprob - want).abs() < 1e-3 * (1.0 + want.abs()),
                "{c:?}: {} vs {want}",
                s.logprob
            );
            assert_eq!(
                s.tokens,
                split_request(&model.tokenizer, c).unwrap().tokens.len()
                    - split_request(&model.tokenizer, c).unwrap().context_len
            );
        }
    }
    let stats = backend.engine().stats();
    assert!(
        stats.prefix_hit_tokens > 0,
        "shared contexts came from the prefix cache: {stats:?}"
    );
}

#[test]
fn a_task_run_writes_samples_and_resumes() {
    let (dir, model, backend) = setup();
    let task_file = dir.path().join("toy.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"query\": \"Item {i}: the colour is\", \"choices\": [\"red\", \"green\", \"blue sky\"], \"gold\": {}}}",
                i % 3
            )
        })
        .collect();
    std::fs::write(&task_file, lines.join("\n")).unwrap();
    let task = load_task(task_file.to_str().unwrap(), dir.path(), 0).unwrap();
    let samples = dir.path().join("samples_toy.jsonl");
    let opts = RunOptions {
        limit: Some(8),
        concurrency: 4,
        resume: false,
    };
    let r = run_task(&backend, &task, &samples, &opts, &|_, _| {}).unwrap();
    assert_eq!(r.samples.len(), 8);
    // acc is the argmax of the reference scores.
    for (res, it) in r.samples.iter().zip(task.mc_items()) {
        let want: Vec<f64> = it.choices.iter().map(|c| reference(&model, c)).collect();
        let best = (0..want.len()).fold(0, |b, i| if want[i] > want[b] { i } else { b });
        assert_eq!(res.pred, best, "doc {}", res.doc_id);
        assert_eq!(res.acc, f64::from(u8::from(best == it.gold)));
    }
    let n_lines = std::fs::read_to_string(&samples).unwrap().lines().count();
    assert_eq!(n_lines, 8);
    // Resume up to all 12: the 8 kept, 4 scored.
    let opts = RunOptions {
        limit: None,
        concurrency: 2,
        resume: true,
    };
    let r2 = run_task(&backend, &task, &samples, &opts, &|_, _| {}).unwrap();
    assert_eq!((r2.samples.len(), r2.summary.scored_now), (12, 4));
    assert_eq!(r2.samples[..8], r.samples[..]);
}

//! A multiple-choice task run end to end through the in-process model on a tiny random
//! Llama: the predictions are the argmax of reference log-likelihoods (a plain
//! full-sequence forward), the per-sample file is written, and a resumed run scores only
//! the rest. (The log-likelihoods themselves are checked in kiln-lm's tests.)

use candle_core::Device;
use kiln_eval::{load_task, run_task, LoglikRequest, RunOptions};
use kiln_lm::{split_request, EngineLm};
use kiln_testing::engine::{start_engine, tiny_model};
use kiln_testing::reference::logprob_from;

fn reference(model: &kiln_model::LoadedModel, r: &LoglikRequest) -> f64 {
    let t = split_request(&model.tokenizer, r).unwrap();
    logprob_from(&model.model, &t.tokens, t.context_len)
}

fn setup() -> (tempfile::TempDir, kiln_model::LoadedModel, EngineLm) {
    let dir = tiny_model();
    let reference_model = kiln_model::load(dir.path(), &Device::Cpu).unwrap();
    let engine = start_engine(dir.path(), "tiny");
    (
        dir,
        reference_model,
        EngineLm::new(engine, serde_json::json!({"model": "tiny"})),
    )
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

//! `finetune_sft` end to end on the tiny random Llama: the loss falls on a learnable task,
//! a run stopped halfway and resumed reproduces the uninterrupted run exactly (losses and
//! adapter bits, with dropout and accumulation on), a resume with a changed config is
//! refused naming the key, and the adapter it writes loads back and changes the logits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use kiln_model::lora::{load_adapter, LoraSet};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_model::{loader, Batch, CausalLM, ForwardContext, LogitsMode, ModelError};
use kiln_train::{finetune_dpo, finetune_sft, FinetuneConfig, FinetuneOptions};

/// A task the random model cannot do and a small adapter can learn: answer every question
/// with the same short reply.
fn data(dir: &Path) -> (PathBuf, PathBuf) {
    let line = |i: usize| {
        serde_json::json!({"messages": [
            {"role": "user", "content": format!("question {i}?")},
            {"role": "assistant", "content": "ok!"}
        ]})
        .to_string()
    };
    let write = |name: &str, n: std::ops::Range<usize>| {
        let p = dir.join(name);
        let text: Vec<String> = n.map(line).collect();
        std::fs::write(&p, text.join("\n")).unwrap();
        p
    };
    (write("train.jsonl", 0..24), write("eval.jsonl", 100..104))
}

fn config(dir: &Path, steps: u64, lr: f64) -> FinetuneConfig {
    let model = dir.join("base");
    if !model.exists() {
        write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    }
    data(dir);
    let text = format!(
        r#"
[model]
path = "base"
[data]
train = "train.jsonl"
eval = "eval.jsonl"
max_len = 64
[lora]
r = 4
alpha = 8
dropout = 0.1
target_modules = ["q_proj", "v_proj", "down_proj"]
[train]
steps = {steps}
batch_size = 4
grad_accum = 2
lr = {lr}
warmup = 2
eval_every = 4
checkpoint_every = 4
seed = 3
"#
    );
    let path = dir.join("ft.toml");
    std::fs::write(&path, text).unwrap();
    FinetuneConfig::load(&path).unwrap()
}

fn opts(out: &Path, resume: bool, stop_at: Option<u64>) -> FinetuneOptions {
    FinetuneOptions {
        out: out.to_path_buf(),
        resume,
        stop_at,
        stop: None,
    }
}

fn losses(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["step"], v["loss"], v["val_loss"])
        })
        .collect()
}

#[test]
fn loss_falls_and_the_adapter_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 60, 5e-2);
    let run = dir.path().join("run");
    let report = finetune_sft(&cfg, &opts(&run, false, None), &Device::Cpu, |_| {}).unwrap();
    let first: f64 = losses(&run)[0].split(' ').nth(1).unwrap().parse().unwrap();
    // The random base's frozen LM head (weights of std 0.02 after a unit-RMS norm) keeps
    // logits within about ±1.5, so even a perfect adapter cannot go far below 4.2 nats
    // from the uniform 5.55; most of that gap must close.
    assert!(
        report.final_loss < first - 1.0,
        "loss {first} -> {}",
        report.final_loss
    );
    let evals: Vec<f64> = losses(&run)
        .iter()
        .filter_map(|l| l.split(' ').nth(2)?.parse().ok())
        .collect();
    assert!(
        evals.len() >= 2 && evals[evals.len() - 1] < evals[0] - 0.5,
        "{evals:?}"
    );
    assert_eq!(report.train_data.examples, 24);
    let base_path = dir.path().join("base");
    let base = loader::load(&base_path, &Device::Cpu).unwrap();
    let adapter = load_adapter(&run, &base.info.config, &Device::Cpu).unwrap();
    assert_eq!(adapter.weights.len(), 2 * 3);
    let set = Arc::new(LoraSet::from_adapter(&adapter).unwrap());
    let adapted =
        loader::load_with_lora(&base_path, &Device::Cpu, |_| Ok::<_, ModelError>(Some(set)))
            .unwrap();
    let batch = Batch::from_tokens(&[256, 72, 105], 0, LogitsMode::Last, &Device::Cpu).unwrap();
    let logits = |m: &dyn CausalLM| -> Vec<f32> {
        let out = m.forward(&batch, &mut ForwardContext::default()).unwrap();
        out.flatten_all().unwrap().to_vec1().unwrap()
    };
    let moved = logits(&adapted.model)
        .iter()
        .zip(logits(&base.model))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        moved > 0.1,
        "the trained adapter barely moves the logits ({moved})"
    );
}

#[test]
fn resumed_run_equals_the_uninterrupted_one_and_a_changed_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 8, 5e-3);
    let whole = dir.path().join("whole");
    finetune_sft(&cfg, &opts(&whole, false, None), &Device::Cpu, |_| {}).unwrap();
    let parts = dir.path().join("parts");
    let half = finetune_sft(&cfg, &opts(&parts, false, Some(4)), &Device::Cpu, |_| {}).unwrap();
    assert_eq!(half.steps, 4);
    finetune_sft(&cfg, &opts(&parts, true, None), &Device::Cpu, |_| {}).unwrap();
    assert_eq!(losses(&whole), losses(&parts));
    let bytes = |run: &Path| std::fs::read(run.join("adapter_model.safetensors")).unwrap();
    assert_eq!(bytes(&whole), bytes(&parts), "adapters differ");

    let mut changed = cfg.clone();
    changed.train.lr = 1e-3;
    let err = finetune_sft(&changed, &opts(&parts, true, None), &Device::Cpu, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("[train] lr"), "{err}");
}

fn prefs(dir: &Path) {
    let line = |i: usize, chosen: &str, rejected: &str| {
        serde_json::json!({"prompt": format!("question {i}?"), "chosen": chosen, "rejected": rejected})
            .to_string()
    };
    let write = |name: &str, n: std::ops::Range<usize>| {
        let text: Vec<String> = n.map(|i| line(i, "yes!", "no.")).collect();
        std::fs::write(dir.join(name), text.join("\n")).unwrap();
    };
    write("prefs.jsonl", 0..16);
    write("prefs_eval.jsonl", 100..104);
}

/// DPO on the tiny model: the held-out reward accuracy and margin go from nothing (the
/// policy starts as its reference) to the chosen answer winning, the reference
/// log-probabilities are cached, and a resumed run equals the uninterrupted one.
#[test]
fn dpo_learns_the_preference_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 12, 2e-2);
    prefs(dir.path());
    cfg.data.train = dir.path().join("prefs.jsonl");
    cfg.data.eval = Some(dir.path().join("prefs_eval.jsonl"));
    cfg.train.grad_accum = 1;
    let whole = dir.path().join("dpo");
    let report = finetune_dpo(&cfg, &opts(&whole, false, None), &Device::Cpu, |_| {}).unwrap();
    assert_eq!(report.train_data.examples, 16);
    assert_eq!(
        report.eval_extra["accuracy"], 1.0,
        "{:?}",
        report.eval_extra
    );
    assert!(
        report.eval_extra["margins"] > 0.5,
        "{:?}",
        report.eval_extra
    );
    let first: serde_json::Value =
        serde_json::from_str(losses_raw(&whole).lines().next().unwrap()).unwrap();
    // Step 1 runs at the reference: loss log 2, no margin.
    assert!(
        (first["loss"].as_f64().unwrap() - 2f64.ln()).abs() < 1e-3,
        "{first}"
    );
    assert!(whole.join("reference_logps.json").exists());

    let parts = dir.path().join("dpo-parts");
    finetune_dpo(&cfg, &opts(&parts, false, Some(5)), &Device::Cpu, |_| {}).unwrap();
    finetune_dpo(&cfg, &opts(&parts, true, None), &Device::Cpu, |_| {}).unwrap();
    assert_eq!(losses(&whole), losses(&parts));
}

fn losses_raw(run: &Path) -> String {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap()
}

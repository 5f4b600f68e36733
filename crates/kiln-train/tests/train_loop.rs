//! `train` end to end on a tiny character corpus: the loss falls, an interrupted run resumed
//! from its checkpoint reproduces the uninterrupted run's losses exactly, a checkpoint from
//! another model is refused by name, a stopped (Ctrl-C) run resumes onto the same curve, and
//! the run directory loads as a model.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kiln_model::CausalLM;
use kiln_train::{
    prepare, save_tokenizer, train, train_on_texts, PrepareOptions, TokenizerSpec, TrainConfig,
    TrainOptions,
};

const TEXT: &str = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\nThe slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\nAnd by opposing end them. To die: to sleep;\n";

fn dataset(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, TEXT.repeat(30)).unwrap();
    let tok = train_on_texts(&TokenizerSpec::char(), &[TEXT]).unwrap();
    let tok_path = dir.join("tokenizer.json");
    save_tokenizer(&tok, &tok_path).unwrap();
    let data = dir.join("data");
    prepare(
        &tok_path,
        &[corpus],
        &data,
        &PrepareOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    data
}

fn config(data: &Path, extra_model: &str) -> TrainConfig {
    let text = format!(
        r#"
[model]
n_layer = 2
n_head = 2
d_model = 32
context = 16
{extra_model}

[data]
dir = "{}"

[train]
steps = 20
batch_size = 4
lr = 3e-3
min_lr = 3e-4
warmup = 2
eval_every = 10
eval_batches = 2
checkpoint_every = 10
keep = 3
seed = 7
"#,
        data.display()
    );
    TrainConfig::parse(&text).unwrap()
}

fn run(cfg: &TrainConfig, out: &Path, resume: bool, stop_at: Option<u64>) -> Vec<f64> {
    let opts = TrainOptions {
        out: out.into(),
        resume,
        stop_at,
        stop: None,
    };
    let mut losses = vec![];
    train(cfg, &opts, &candle_core::Device::Cpu, |m| {
        losses.push(m.loss)
    })
    .unwrap();
    losses
}

#[test]
fn resumed_run_matches_uninterrupted_run_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    for extra in [
        "",
        "norm = \"layernorm\"\nposition = \"learned\"\nmlp = \"gelu\"",
    ] {
        let cfg = config(&data, extra);
        let whole = run(&cfg, &dir.path().join("whole"), false, None);
        assert_eq!(whole.len(), 20);
        assert!(whole[19] < whole[0] - 0.3, "loss did not fall: {whole:?}");
        let split = dir.path().join("split");
        let _ = std::fs::remove_dir_all(&split);
        let first = run(&cfg, &split, false, Some(10));
        assert_eq!(first, whole[..10]);
        let rest = run(&cfg, &split, true, None);
        assert_eq!(rest, whole[10..], "{extra}: resumed losses differ");
        // metrics.jsonl holds each step once.
        let lines = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 20);
    }
}

#[test]
fn resume_refuses_a_checkpoint_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let out = dir.path().join("run");
    run(&config(&data, ""), &out, false, Some(10));
    let other = config(&data, "mlp = \"gelu\"");
    let opts = TrainOptions {
        out,
        resume: true,
        stop_at: None,
        stop: None,
    };
    let err = train(&other, &opts, &candle_core::Device::Cpu, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint") && err.contains("step-000010"),
        "{err}"
    );
}

/// A resume under other `[train]` settings (another --steps, say) is refused by key, and so
/// is one whose checkpoint is past the step the run stops at; the run itself is untouched.
#[test]
fn resume_refuses_other_settings_and_a_stop_before_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let out = dir.path().join("run");
    let cfg = config(&data, "");
    run(&cfg, &out, false, Some(10));
    let resume = |cfg: &TrainConfig, stop_at| {
        let opts = TrainOptions {
            out: out.clone(),
            resume: true,
            stop_at,
            stop: None,
        };
        train(cfg, &opts, &candle_core::Device::Cpu, |_| {})
    };
    let mut fitted = cfg.clone();
    fitted.train = cfg.train.fit_to(12).unwrap();
    let err = resume(&fitted, None).unwrap_err().to_string();
    assert!(
        err.contains("[train] steps 20 in the checkpoint, 12 now"),
        "{err}"
    );
    let err = resume(&cfg, Some(5)).unwrap_err().to_string();
    assert!(
        err.contains("step 10") && err.contains("past step 5"),
        "{err}"
    );
    assert_eq!(resume(&cfg, None).unwrap().steps, 20);
}

#[test]
fn run_directory_loads_as_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let out = dir.path().join("run");
    run(
        &config(&data, "norm = \"layernorm\"\nmlp = \"gelu\""),
        &out,
        false,
        None,
    );
    let m = kiln_model::load(&out, &candle_core::Device::Cpu).unwrap();
    assert_eq!(m.model.config().num_layers, 2);
    let ids = m.tokenizer.encode("To be", false, false).unwrap();
    assert_eq!(m.tokenizer.decode(&ids).unwrap(), "To be");
}

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000
}

/// The stop flag (what Ctrl-C sets in `kiln train`): a run stopped mid-way checkpoints the
/// step it completed, exports the run directory and draws `loss.png`, and `resume` then
/// continues the very same loss curve as a run that was never stopped.
#[test]
fn stop_flag_checkpoints_and_resume_continues_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let cfg = config(
        &data,
        "norm = \"layernorm\"\nposition = \"learned\"\nmlp = \"gelu\"",
    );

    let whole_dir = dir.path().join("whole");
    let opts = TrainOptions {
        out: whole_dir.clone(),
        ..Default::default()
    };
    let mut whole = vec![];
    let report = train(&cfg, &opts, &candle_core::Device::Cpu, |m| {
        whole.push(m.loss)
    })
    .unwrap();
    assert!(!report.interrupted);
    assert_eq!(whole.len(), 20);
    assert!(is_png(&whole_dir.join("loss.png")), "no loss.png");

    // Stop at step 7: between checkpoints, so the stop itself must write one.
    let split = dir.path().join("split");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = TrainOptions {
        out: split.clone(),
        stop: Some(stop.clone()),
        ..Default::default()
    };
    let mut first = vec![];
    let report = train(&cfg, &opts, &candle_core::Device::Cpu, |m| {
        first.push(m.loss);
        if m.step == 7 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(report.interrupted);
    assert_eq!(report.steps, 7);
    assert_eq!(first, whole[..7]);
    assert!(split.join("checkpoints/step-000007").is_dir());
    assert!(split.join("model.safetensors").is_file(), "not exported");
    assert!(
        is_png(&split.join("loss.png")),
        "no loss.png after the stop"
    );

    let opts = TrainOptions {
        out: split.clone(),
        resume: true,
        ..Default::default()
    };
    let mut rest = vec![];
    let report = train(&cfg, &opts, &candle_core::Device::Cpu, |m| {
        rest.push(m.loss)
    })
    .unwrap();
    assert!(!report.interrupted);
    assert_eq!(report.steps, 20);
    assert_eq!(rest, whole[7..], "resumed losses differ");
    let lines = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 20);
}

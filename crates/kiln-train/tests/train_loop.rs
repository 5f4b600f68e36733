//! `train` end to end on a tiny character corpus: the loss falls, an interrupted run resumed
//! from its checkpoint reproduces the uninterrupted run's losses exactly, a checkpoint from
//! another model is refused by name, and the run directory loads as a model.

use std::path::{Path, PathBuf};

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
    train(cfg, &opts, |m| losses.push(m.loss)).unwrap();
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
    let err = train(&other, &opts, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint") && err.contains("step-000010"),
        "{err}"
    );
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

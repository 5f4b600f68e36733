//! The stop flag (what Ctrl-C sets in `kiln train`): a run stopped mid-way checkpoints the
//! step it completed, exports the run directory and draws `loss.png`, and `resume` then
//! continues the very same loss curve as a run that was never stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

fn config(data: &Path) -> TrainConfig {
    let text = format!(
        "[model]\nn_layer = 2\nn_head = 2\nd_model = 32\ncontext = 16\nnorm = \"layernorm\"\n\
         position = \"learned\"\nmlp = \"gelu\"\n\n[data]\ndir = \"{}\"\n\n\
         [train]\nsteps = 20\nbatch_size = 4\nlr = 3e-3\nmin_lr = 3e-4\nwarmup = 2\n\
         eval_every = 10\neval_batches = 2\ncheckpoint_every = 10\nkeep = 3\nseed = 7\n",
        data.display()
    );
    TrainConfig::parse(&text).unwrap()
}

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000
}

#[test]
fn stop_flag_checkpoints_and_resume_continues_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let cfg = config(&data);

    let whole_dir = dir.path().join("whole");
    let opts = TrainOptions {
        out: whole_dir.clone(),
        ..Default::default()
    };
    let mut whole = vec![];
    let report = train(&cfg, &opts, |m| whole.push(m.loss)).unwrap();
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
    let report = train(&cfg, &opts, |m| {
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
    let report = train(&cfg, &opts, |m| rest.push(m.loss)).unwrap();
    assert!(!report.interrupted);
    assert_eq!(report.steps, 20);
    assert_eq!(rest, whole[7..], "resumed losses differ");
    let lines = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 20);
}

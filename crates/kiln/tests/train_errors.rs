//! Issue 3, acceptance 7: bad input to the training stage gives a non-zero exit and one
//! readable `error:` line that names the file, line, key or checkpoint at fault (never a
//! panic or a backtrace), and a failed checkpoint write leaves the previous checkpoint
//! intact. Every case drives the real binary on tiny inputs in a temp directory.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::kiln;

const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";

/// A tiny model: every run below takes well under a second.
const CONFIG: &str = r#"# a tiny run
[model]
n_layer = 1
n_head = 2
d_model = 16
context = 8

[data]
dir = "data"

[train]
steps = 6
batch_size = 2
lr = 1e-3
min_lr = 1e-4
eval_every = 1000
eval_batches = 1
checkpoint_every = 2
keep = 2
"#;

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    // Many users (and CI) run with RUST_BACKTRACE=1: the error must still be one line.
    kiln()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running kiln")
}

/// Runs kiln and asserts success; returns stdout.
fn ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a clean failure: non-zero exit, exactly one `error:` line on stderr, no panic,
/// and every one of `mentions` in it (case-insensitive). Returns the line.
fn check_error(what: &str, out: &Output, mentions: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let err = stderr.trim_end();
    assert!(!out.status.success(), "{what}: exited 0");
    assert!(out.status.code().is_some(), "{what}: killed by a signal");
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: more than one line: {err}");
    for m in mentions {
        assert!(
            err.to_lowercase().contains(&m.to_lowercase()),
            "{what}: {err:?} does not mention {m:?}"
        );
    }
    eprintln!("ok: {what}: {err}");
    err.to_string()
}

fn fail<S: AsRef<OsStr> + std::fmt::Debug>(what: &str, args: &[S], mentions: &[&str]) -> String {
    check_error(what, &run(args), mentions)
}

/// A temp directory with `c.txt`, a character tokenizer `tok.json` and shards `data/`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("c.txt"), TEXT.repeat(20)).unwrap();
        let (c, tok, data) = (d.join("c.txt"), d.join("tok.json"), d.join("data"));
        ok(&[
            "tokenizer",
            "train",
            "--kind",
            "char",
            "-i",
            s(&c),
            "-o",
            s(&tok),
        ]);
        ok(&[
            "data",
            "prepare",
            "-t",
            s(&tok),
            "-i",
            s(&c),
            "-o",
            s(&data),
        ]);
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `name` with [`CONFIG`] edited by `edit`; returns its path.
    fn config(&self, name: &str, edit: impl FnOnce(&str) -> String) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, edit(CONFIG)).unwrap();
        p
    }

    /// `kiln train --config CFG --out OUT --json EXTRA...`
    fn train(&self, cfg: &Path, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["train", "--config", s(cfg), "--out", s(out), "--json"];
        args.extend_from_slice(extra);
        run(&args)
    }
}

/// 1-based line number of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
        + 1
}

#[test]
fn malformed_toml_names_the_file_line_and_key() {
    let f = Fixture::new();
    let out = f.path("run");
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        // what, replace, with, the error must mention (besides the file name)
        (
            "a string where a number goes",
            "lr = 1e-3",
            "lr = \"fast\"",
            &["`lr`", "[train]", "expected a number"],
        ),
        (
            "a float where a count goes",
            "steps = 6",
            "steps = 6.5",
            &["`steps`", "[train]", "whole number"],
        ),
        (
            "a negative count",
            "batch_size = 2",
            "batch_size = -2",
            &["`batch_size`", "-2"],
        ),
        (
            "a syntax error in a value",
            "d_model = 16",
            "d_model = 16 32",
            &["`d_model`", "[model]"],
        ),
        (
            "a syntax error in a table header",
            "[data]",
            "[data",
            &["table"],
        ),
        (
            "a duplicate key",
            "lr = 1e-3",
            "lr = 1e-3\nlr = 2e-3",
            &["`lr`", "duplicate"],
        ),
    ];
    for (what, from, to, mentions) in cases {
        let cfg = f.config("bad.toml", |c| c.replacen(from, to, 1));
        let text = std::fs::read_to_string(&cfg).unwrap();
        // The line of the last line of the replacement (the duplicate's second `lr`).
        let last = to.lines().last().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let line = lines.iter().rposition(|l| *l == last).unwrap() + 1;
        let mut m = vec!["bad.toml".to_string(), format!("line {line}")];
        m.extend(mentions.iter().map(|s| s.to_string()));
        let m: Vec<&str> = m.iter().map(String::as_str).collect();
        check_error(what, &f.train(&cfg, &out, &[]), &m);
    }
    // A required key left out: the error names it and its table.
    let cfg = f.config("bad.toml", |c| c.replacen("min_lr = 1e-4\n", "", 1));
    let line = line_of(CONFIG, "[train]");
    check_error(
        "a missing key",
        &f.train(&cfg, &out, &[]),
        &["bad.toml", &format!("line {line}"), "[train]", "min_lr"],
    );
    // Values that parse but make no sense name their key.
    let cfg = f.config("bad.toml", |c| c.replacen("n_head = 2", "n_head = 3", 1));
    check_error(
        "heads that do not divide d_model",
        &f.train(&cfg, &out, &[]),
        &["bad.toml", "n_head", "d_model"],
    );
    // A data directory that is not there: named with the manifest it should hold.
    let cfg = f.config("bad.toml", |c| {
        c.replacen("dir = \"data\"", "dir = \"nodata\"", 1)
    });
    check_error(
        "a missing data directory",
        &f.train(&cfg, &out, &[]),
        &["nodata/manifest.json", "no such file"],
    );
    fail(
        "a missing config file",
        &[
            "train",
            "--config",
            s(&f.path("nope.toml")),
            "--out",
            s(&out),
        ],
        &["nope.toml", "no such file"],
    );
    assert!(!out.exists(), "a failed run created {}", out.display());
}

#[test]
fn unknown_option_values_list_the_allowed_ones() {
    let f = Fixture::new();
    let out = f.path("run");
    for (key, bad, allowed) in [
        ("norm", "batchnorm", ["layernorm", "rmsnorm"]),
        ("position", "alibi", ["rope", "learned"]),
        ("mlp", "relu", ["swiglu", "gelu"]),
    ] {
        let line = format!("{key} = \"{bad}\"");
        let cfg = f.config("bad.toml", |c| {
            c.replacen("context = 8", &format!("context = 8\n{line}"), 1)
        });
        let text = std::fs::read_to_string(&cfg).unwrap();
        let n = line_of(&text, &line);
        check_error(
            &format!("{key} = {bad:?}"),
            &f.train(&cfg, &out, &[]),
            &[
                "bad.toml",
                &format!("line {n}"),
                &format!("`{key}`"),
                bad,
                allowed[0],
                allowed[1],
            ],
        );
    }
    // Unknown keys and tables list what is allowed too.
    let cfg = f.config("bad.toml", |c| c.replacen("steps = 6", "stepz = 6", 1));
    let n = line_of(&std::fs::read_to_string(&cfg).unwrap(), "stepz");
    check_error(
        "an unknown key",
        &f.train(&cfg, &out, &[]),
        &[
            "bad.toml",
            &format!("line {n}"),
            "stepz",
            "steps",
            "batch_size",
        ],
    );
    let cfg = f.config("bad.toml", |c| c.replacen("[data]", "[dataset]", 1));
    check_error(
        "an unknown table",
        &f.train(&cfg, &out, &[]),
        &["bad.toml", "dataset", "model", "data", "train"],
    );
    let cfg = f.config("bad.toml", |c| {
        c.replacen("context = 8", "context = 8\ntied_embeddings = \"yes\"", 1)
    });
    check_error(
        "a string for a boolean",
        &f.train(&cfg, &out, &[]),
        &["bad.toml", "`tied_embeddings`", "boolean"],
    );
    assert!(!out.exists(), "a failed run created {}", out.display());
}

/// A WordLevel tokenizer.json of `n` words `w0`..`w{n-1}` (id = the number), split on
/// whitespace: a vocabulary of any size, written in milliseconds.
fn word_tokenizer(path: &Path, n: u32) {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..n).map(|i| (format!("w{i}"), i.into())).collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(path, serde_json::to_vec(&json).unwrap()).unwrap();
}

#[test]
fn a_vocabulary_too_large_for_u16_gets_u32_shards_and_u16_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const VOCAB: u32 = 70_000;
    let tok = d.join("words.json");
    word_tokenizer(&tok, VOCAB);
    // Ids spread over the whole vocabulary, many of them past u16's 65,535.
    let ids: Vec<u32> = (0..600u32).map(|i| (i * 7919 + 65_000) % VOCAB).collect();
    assert!(ids.iter().filter(|&&i| i > u32::from(u16::MAX)).count() > 30);
    let text: String = ids.iter().map(|i| format!("w{i} ")).collect();
    let corpus = d.join("words.txt");
    std::fs::write(&corpus, &text).unwrap();
    let data = d.join("data");

    // (i) auto: u32 shards holding the exact ids, which load and train.
    let m: serde_json::Value = serde_json::from_str(&ok(&[
        "data",
        "prepare",
        "-t",
        s(&tok),
        "-i",
        s(&corpus),
        "-o",
        s(&data),
        "--json",
    ]))
    .unwrap();
    assert_eq!(m["dtype"], "u32");
    assert_eq!(m["vocab_size"], VOCAB);
    let ds = kiln_train::TokenDataset::open(&data).unwrap();
    assert_eq!(ds.train.dtype(), kiln_train::Dtype::U32);
    let mut got = ds.train.to_vec();
    got.extend(ds.val.to_vec());
    assert_eq!(got, ids, "the u32 shards do not hold the encoded ids");
    assert_eq!(
        std::fs::metadata(data.join("train.bin")).unwrap().len(),
        4 * ds.train.len() as u64
    );
    let cfg = d.join("run.toml");
    std::fs::write(&cfg, CONFIG.replace("steps = 6", "steps = 2")).unwrap();
    let run_dir = d.join("run");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run_dir),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["steps"], 2);
    // The initial loss of a model over 70,000 tokens: ln(70000) = 11.16.
    assert!(report["final_loss"].as_f64().unwrap() > 10.0, "{report}");

    // (ii) u16 asked for explicitly cannot hold the ids.
    fail(
        "--dtype u16 with 70,000 tokens",
        &[
            "data",
            "prepare",
            "-t",
            s(&tok),
            "-i",
            s(&corpus),
            "-o",
            s(&d.join("data16")),
            "--dtype",
            "u16",
        ],
        &["70000", "u16", "65536", "u32"],
    );
    assert!(!d.join("data16").exists());

    // (iii) a manifest that claims u16 for such a vocabulary is refused by name before
    // anything is read as u16.
    let manifest = data.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["dtype"] = "u16".into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    fail(
        "a manifest claiming u16 for 70,000 tokens",
        &["train", "--config", s(&cfg), "--out", s(&d.join("run16"))],
        &["manifest.json", "u16", "65536", "70000"],
    );
    let e = kiln_train::TokenDataset::open(&data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifest.json") && e.contains("u16"), "{e}");

    // (iv) ids past the manifest's vocabulary (a corrupt shard, or a manifest edited to a
    // smaller vocabulary) are named with the shard, not found deep inside the model.
    m["dtype"] = "u32".into();
    m["vocab_size"] = 1000.into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    fail(
        "shard ids past the manifest's vocabulary",
        &["train", "--config", s(&cfg), "--out", s(&d.join("run1000"))],
        &[
            ".bin",
            "token id",
            "outside the vocabulary of 1000",
            "corrupt",
        ],
    );
}

#[test]
fn an_empty_corpus_is_refused_by_name() {
    let f = Fixture::new();
    let empty = f.path("empty.txt");
    let blank = f.path("blank.txt");
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&blank, " \n\n\t  \r\n").unwrap();
    let tok = f.path("tok.json");
    for (what, inputs) in [
        ("an empty file", vec![&empty]),
        ("a whitespace-only file", vec![&blank]),
        ("empty and whitespace-only files", vec![&empty, &blank]),
    ] {
        let names: Vec<&str> = inputs
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        let mut mentions = vec!["empty corpus"];
        mentions.extend(&names);
        let out = f.path("new-tok.json");
        for kind in [
            &["--kind", "char"][..],
            &["--kind", "bpe", "--vocab-size", "300"][..],
        ] {
            let mut args = vec!["tokenizer", "train", "-o", s(&out), "-i"];
            args.extend(inputs.iter().map(|p| s(p)));
            args.extend_from_slice(kind);
            fail(
                &format!("tokenizer train {kind:?} on {what}"),
                &args,
                &mentions,
            );
        }
        assert!(!out.exists(), "a failed run wrote {}", out.display());
        let shards = f.path("new-data");
        let mut args = vec!["data", "prepare", "-t", s(&tok), "-o", s(&shards), "-i"];
        args.extend(inputs.iter().map(|p| s(p)));
        fail(&format!("data prepare on {what}"), &args, &mentions);
        assert!(!shards.exists(), "a failed run wrote {}", shards.display());
    }
    // One empty file among real text is fine.
    let c = f.path("c.txt");
    ok(&[
        "data",
        "prepare",
        "-t",
        s(&tok),
        "-o",
        s(&f.path("mixed")),
        "-i",
        s(&empty),
        s(&c),
    ]);
}

/// Names of the entries of `run/checkpoints`, sorted.
fn checkpoint_entries(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Names of the checkpoints `kiln_train::training::checkpoint::list` considers complete.
fn listed(run: &Path) -> Vec<String> {
    kiln_train::training::checkpoint::list(run)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The loss of every step in `run/metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// What is damaged, the checkpoint file it is in, how, and what the error must say.
type Damage = (
    &'static str,
    &'static str,
    fn(&Path),
    &'static [&'static str],
);

#[test]
fn a_corrupt_or_mismatched_checkpoint_says_which() {
    let f = Fixture::new();
    let cfg = f.config("run.toml", |c| c.to_string());
    let good = f.path("good");
    let out = f.train(&cfg, &good, &["--stop-after", "4"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&good), ["step-000002", "step-000004"]);
    let resume = |run: &Path| f.train(&cfg, run, &["--resume"]);

    // Damage to the newest checkpoint: the error names the file and what is wrong, and
    // says how to fall back to the previous one.
    let cases: [Damage; 7] = [
        (
            "truncated model.safetensors",
            "model.safetensors",
            |p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            },
            &["corrupt", "SHA-256"],
        ),
        (
            "truncated model.safetensors, state.json without hashes (an older kiln's)",
            "model.safetensors",
            |p| {
                let state = p.with_file_name("state.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
                v.as_object_mut().unwrap().remove("sha256");
                std::fs::write(&state, v.to_string()).unwrap();
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            },
            &["corrupt or truncated"],
        ),
        (
            "model.safetensors garbled in its tensor data",
            "model.safetensors",
            |p| {
                let mut b = std::fs::read(p).unwrap();
                let n = b.len();
                b[n - 100..n - 50].fill(0xff);
                std::fs::write(p, b).unwrap();
            },
            &["corrupt", "SHA-256"],
        ),
        (
            "optimizer.safetensors cut to nothing",
            "optimizer.safetensors",
            |p| std::fs::write(p, b"").unwrap(),
            &["corrupt"],
        ),
        (
            "missing model.safetensors",
            "model.safetensors",
            |p| std::fs::remove_file(p).unwrap(),
            &["cannot read"],
        ),
        (
            "garbled state.json",
            "state.json",
            |p| std::fs::write(p, b"{\"step\": 4, \"rng\": [garbage").unwrap(),
            &["corrupt"],
        ),
        (
            "state.json with an impossible RNG state",
            "state.json",
            |p| {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                v["rng"]["s"] = serde_json::json!([0, 0, 0, 0]);
                std::fs::write(p, v.to_string()).unwrap();
            },
            &["corrupt", "RNG state"],
        ),
    ];
    for (i, (what, file, damage, mentions)) in cases.into_iter().enumerate() {
        let run = f.path(&format!("damaged-{i}"));
        copy_dir(&good, &run);
        damage(&run.join("checkpoints/step-000004").join(file));
        let mut m = vec![file, "step-000004", "delete", "step-000002"];
        m.extend_from_slice(mentions);
        check_error(what, &resume(&run), &m);
        // Deleting the damaged checkpoint, as the message says, resumes from the previous.
        std::fs::remove_dir_all(run.join("checkpoints/step-000004")).unwrap();
        let out = resume(&run);
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(listed(&run), ["step-000004", "step-000006"], "{what}");
    }

    // A checkpoint of another model: the error names the checkpoint and what differs, by
    // the config's own keys.
    let other = f.config("other.toml", |c| {
        c.replacen("d_model = 16", "d_model = 32", 1)
            .replacen("n_layer = 1", "n_layer = 2", 1)
    });
    check_error(
        "a checkpoint of another shape",
        &f.train(&other, &good, &["--resume"]),
        &[
            "step-000004",
            "state.json",
            "d_model 16 in the checkpoint, 32 in the config",
            "n_layer 1 in the checkpoint, 2 in the config",
        ],
    );
    let other = f.config("other.toml", |c| {
        c.replacen("context = 8", "context = 8\nnorm = \"layernorm\"", 1)
    });
    check_error(
        "a checkpoint with another norm",
        &f.train(&other, &good, &["--resume"]),
        &[
            "step-000004",
            "norm rmsnorm in the checkpoint, layernorm in the config",
        ],
    );
    // Nothing to resume from.
    check_error(
        "--resume without a checkpoint",
        &resume(&f.path("fresh")),
        &["checkpoints", "no checkpoint to resume from"],
    );
    // The refused resumes changed nothing: the run still resumes with its own config.
    let out = resume(&good);
    assert!(out.status.success(), "{out:?}");
}

/// `kiln train` with the file-size limit set to a few KB (and SIGXFSZ ignored, so a write
/// past it fails with EFBIG as on a full disk instead of killing the process).
#[cfg(unix)]
fn train_on_a_full_disk(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = std::process::Command::new("sh");
    c.args([
        "-c",
        "trap '' XFSZ; ulimit -f 8 || exit 99; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_kiln"),
        "train",
        "--config",
        s(cfg),
        "--out",
        s(out),
        "--json",
    ])
    .args(extra)
    .env("KILN_THREADS", "2")
    .env("RUST_BACKTRACE", "1");
    c.output().expect("running sh")
}

#[test]
fn a_failed_checkpoint_write_leaves_the_previous_checkpoint_intact() {
    let f = Fixture::new();
    let cfg = f.config("run.toml", |c| c.to_string());
    // The uninterrupted run, for its losses.
    let whole = f.path("whole");
    assert!(f.train(&cfg, &whole, &[]).status.success());
    let run = f.path("run");
    assert!(f.train(&cfg, &run, &["--stop-after", "2"]).status.success());
    assert_eq!(listed(&run), ["step-000002"]);
    let ckpt = run.join("checkpoints/step-000002");
    let snapshot = |dir: &Path| -> Vec<Vec<u8>> {
        ["model.safetensors", "optimizer.safetensors", "state.json"]
            .iter()
            .map(|n| std::fs::read(dir.join(n)).unwrap())
            .collect()
    };
    let before = snapshot(&ckpt);

    // 1. Something that is not a checkpoint sits where step-000004 goes.
    let obstacle = run.join("checkpoints/step-000004");
    std::fs::write(&obstacle, "not a checkpoint").unwrap();
    check_error(
        "a file in the new checkpoint's place",
        &f.train(&cfg, &run, &["--resume", "--stop-after", "4"]),
        &[
            "step-000004",
            "not a checkpoint directory",
            "step-000002 is intact",
        ],
    );
    assert_eq!(listed(&run), ["step-000002"]);
    assert_eq!(checkpoint_entries(&run), ["step-000002", "step-000004"]);
    assert_eq!(std::fs::read(&obstacle).unwrap(), b"not a checkpoint");
    assert_eq!(snapshot(&ckpt), before);
    std::fs::remove_file(&obstacle).unwrap();

    // 2. The disk fills up while the new checkpoint is written.
    #[cfg(unix)]
    {
        let out = train_on_a_full_disk(&cfg, &run, &["--resume", "--stop-after", "4"]);
        assert_ne!(out.status.code(), Some(99), "sh has no `ulimit -f`");
        check_error(
            "a full disk while writing a checkpoint",
            &out,
            &["step-000004", "not written", "step-000002 is intact"],
        );
        // No half-written checkpoint is left, listed or not; the previous one is untouched.
        assert_eq!(checkpoint_entries(&run), ["step-000002"]);
        assert_eq!(snapshot(&ckpt), before);
    }

    // 3. A write killed half-way (an older kiln, or a crash between files): a partial
    // directory and a step directory without state.json are never taken for checkpoints.
    let partial = run.join("checkpoints/.step-000004.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), &before[0][..100]).unwrap();
    let torn = run.join("checkpoints/step-000004");
    std::fs::create_dir_all(&torn).unwrap();
    std::fs::write(torn.join("model.safetensors"), &before[0][..100]).unwrap();
    assert_eq!(listed(&run), ["step-000002"]);

    // Resuming from the intact checkpoint continues the uninterrupted run exactly, and the
    // leftovers are replaced by complete checkpoints.
    let out = f.train(&cfg, &run, &["--resume"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(losses(&run), losses(&whole));
    assert_eq!(listed(&run), ["step-000004", "step-000006"]);
    assert_eq!(checkpoint_entries(&run), ["step-000004", "step-000006"]);
}

//! `kiln quickstart` end to end at a few steps (the embedded corpus and preset, from a
//! directory that has neither), then the run directory it leaves through `kiln generate`,
//! `kiln perplexity` and `kiln chat`; and every preset in presets/ parses.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::kiln;

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs kiln in `cwd`, asserts success, returns (stdout, stderr).
fn ok_in(cwd: &Path, args: &[&OsStr]) -> (String, String) {
    let out = kiln()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("running kiln");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}): {stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn quickstart_help_says_what_it_does_and_how_long() {
    let (help, _) = ok_in(Path::new("."), &[os("quickstart"), os("--help")]);
    for w in [
        "Shakespeare",
        "no download",
        "minutes",
        "--steps",
        "--out",
        "loss.png",
    ] {
        assert!(help.contains(w), "quickstart --help does not mention {w}");
    }
}

#[test]
fn quickstart_trains_samples_and_leaves_a_usable_run() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // Relative --out, resolved against an empty working directory: nothing from the
    // repository is reachable, so the corpus and preset must come from the binary.
    let (stdout, _) = ok_in(
        cwd,
        &[
            os("quickstart"),
            os("--out"),
            os("qs"),
            os("--steps"),
            os("8"),
        ],
    );
    eprintln!("{stdout}");
    let qs = cwd.join("qs");
    for f in [
        "input.txt",
        "data/manifest.json",
        "data/train.bin",
        "run/config.json",
        "run/model.safetensors",
        "run/tokenizer.json",
        "run/metrics.jsonl",
    ] {
        assert!(qs.join(f).exists(), "quickstart left no {f}");
    }
    let corpus = std::fs::read(common::repo_root().join("data/shakespeare/input.txt")).unwrap();
    assert_eq!(std::fs::read(qs.join("input.txt")).unwrap(), corpus);
    assert!(stdout.contains("8 steps"), "{stdout}");
    assert_eq!(stdout.matches("--- sample").count(), 3, "{stdout}");
    assert!(
        stdout.contains("ROMEO:") && stdout.contains("JULIET:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kiln generate --model qs/run"),
        "no usage hint: {stdout}"
    );
    let metrics = std::fs::read_to_string(qs.join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 8);

    // Again: the shards are kept (same tokenizer), the run trained afresh.
    let (again, _) = ok_in(
        cwd,
        &[os("quickstart"), os("-o"), os("qs"), os("--steps"), os("2")],
    );
    assert!(again.contains("already prepared"), "{again}");
    let metrics = std::fs::read_to_string(qs.join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);

    let run = qs.join("run");
    let r = run.as_os_str();
    // Generation past the 64-character context needs --sliding-window; without it, a
    // one-line error that says so.
    let (text, _) = ok_in(
        cwd,
        &[
            os("generate"),
            os("--model"),
            r,
            os("--prompt"),
            os("ROMEO:"),
            os("-n"),
            os("150"),
            os("--sliding-window"),
            os("--ignore-eos"),
            os("--json"),
        ],
    );
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(g["token_ids"].as_array().unwrap().len(), 150);
    assert_eq!(g["text"].as_str().unwrap().chars().count(), 150, "{g}");
    let out = kiln()
        .args([
            os("generate"),
            os("-m"),
            r,
            os("-p"),
            os("ROMEO:"),
            os("-n"),
            os("150"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with("error:") && err.contains("context") && err.contains("--sliding-window"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    // Within the context, plain generation works as for any model.
    ok_in(
        cwd,
        &[
            os("generate"),
            os("-m"),
            r,
            os("-p"),
            os("JULIET:"),
            os("-n"),
            os("40"),
        ],
    );

    let corpus_path = common::repo_root().join("data/shakespeare/input.txt");
    let (ppl, _) = ok_in(
        cwd,
        &[
            os("perplexity"),
            os("--model"),
            r,
            os("--file"),
            corpus_path.as_os_str(),
            os("--chunks"),
            os("2"),
            os("--ctx"),
            os("64"),
            os("--json"),
        ],
    );
    let p: serde_json::Value = serde_json::from_str(&ppl).unwrap();
    let v = p["ppl"].as_f64().unwrap();
    // Barely trained on 77 characters: between a good model and uniform guessing.
    assert!(v.is_finite() && v > 1.0 && v < 100.0, "ppl {v}");
    assert!(p["tokens_scored"].as_u64().unwrap() > 0, "{p}");

    // A character model has no chat template: chat continues the text, saying so.
    let (reply, note) = ok_in(
        cwd,
        &[
            os("chat"),
            os("--model"),
            r,
            os("--prompt"),
            os("hi"),
            os("-n"),
            os("100"),
        ],
    );
    assert!(note.contains("no chat template"), "{note}");
    assert!(!reply.trim().is_empty(), "empty reply");
}

#[test]
fn presets_parse() {
    let dir = common::repo_root().join("presets");
    let mut names = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let cfg = kiln_train::TrainConfig::load(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(cfg.data.dir.starts_with(&dir), "{}", p.display());
            names.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    for want in ["llama-style", "shakespeare-bpe", "shakespeare-char"] {
        assert!(names.iter().any(|n| n == want), "no presets/{want}.toml");
    }
    let llama = kiln_train::TrainConfig::load(&dir.join("llama-style.toml")).unwrap();
    let m = llama.model_config(1024);
    assert!(m.kinds.is_llama(), "{:?}", m.kinds);
    assert!(m.num_kv_heads < m.num_heads, "GQA");
}

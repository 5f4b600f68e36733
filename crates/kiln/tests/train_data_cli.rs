//! `kiln tokenizer train` and `kiln data prepare` end to end: help texts, round trips
//! through the written files (read back with kiln-train and, when a Python with Hugging Face
//! `tokenizers` is around, with HF itself), and bad input as one-line errors.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{kiln, run_kiln};

const A: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";
const B: &str = "Ünïcödé:\tnaïve café, 日本語, Привет 🦀👍🏽\n  spaced   out  \n\n\r\nend";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("writing a test file");
    p
}

/// Runs kiln, asserts success, parses stdout as JSON.
fn ok_json(args: &[&OsStr]) -> serde_json::Value {
    let out = run_kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn help_explains_the_options() {
    for (args, words) in [
        (
            vec!["tokenizer", "train", "--help"],
            vec![
                "--vocab-size",
                "--kind",
                "--special",
                "bpe",
                "char",
                "tokenizer.json",
            ],
        ),
        (
            vec!["data", "prepare", "--help"],
            vec![
                "--tokenizer",
                "--val-fraction",
                "manifest.json",
                "u16",
                "atomically",
            ],
        ),
        (vec!["--help"], vec!["tokenizer", "data"]),
    ] {
        let out = run_kiln(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for w in words {
            assert!(
                text.contains(w),
                "`kiln {}` does not mention {w}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn char_tokenizer_and_shards_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", A.as_bytes());
    let b = write(dir.path(), "b.txt", B.as_bytes());
    let tok = dir.path().join("char.json");
    let s = ok_json(&[
        os("tokenizer"),
        os("train"),
        os("--kind"),
        os("char"),
        os("--input"),
        a.as_os_str(),
        b.as_os_str(),
        os("--out"),
        tok.as_os_str(),
        os("--json"),
    ]);
    let mut chars: Vec<char> = format!("{A}{B}").chars().collect();
    chars.sort();
    chars.dedup();
    assert_eq!(s["vocab_size"], chars.len());
    assert_eq!(s["special_tokens"], serde_json::json!([]));

    let out = dir.path().join("shards");
    let m = ok_json(&[
        os("data"),
        os("prepare"),
        os("--tokenizer"),
        tok.as_os_str(),
        os("--input"),
        a.as_os_str(),
        b.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--val-fraction"),
        os("0.2"),
        os("--json"),
    ]);
    let total = (A.chars().count() + B.chars().count()) as u64;
    assert_eq!(m["dtype"], "u16");
    assert_eq!(
        m["train"]["tokens"].as_u64().unwrap(),
        (total as f64 * 0.8) as u64
    );
    assert_eq!(
        m["train"]["tokens"].as_u64().unwrap() + m["val"]["tokens"].as_u64().unwrap(),
        total
    );
    assert_eq!(m["sources"][1]["bytes"].as_u64().unwrap(), B.len() as u64);

    let ds = kiln_train::TokenDataset::open(&out).unwrap();
    let t = kiln_train::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    let mut ids = ds.train.to_vec();
    ids.extend(ds.val.to_vec());
    assert_eq!(t.decode(&ids, false).unwrap(), format!("{A}{B}"));
}

#[test]
fn bpe_tokenizer_round_trips_and_loads_in_hf() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", A.repeat(20).as_bytes());
    let tok = dir.path().join("bpe.json");
    let s = ok_json(&[
        os("tokenizer"),
        os("train"),
        os("--input"),
        a.as_os_str(),
        os("--vocab-size"),
        os("300"),
        os("--special"),
        os("<|endoftext|>"),
        os("--special"),
        os("<|pad|>"),
        os("--out"),
        tok.as_os_str(),
        os("--json"),
    ]);
    assert_eq!(s["vocab_size"], 300);
    let t = kiln_train::load_tokenizer(&tok).unwrap();
    assert_eq!(t.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(t.token_to_id("<|pad|>"), Some(1));
    let texts = [A, B, "a  b   c\t\td\n\n\ne \t \n  ", "x<|endoftext|>y"];
    for text in texts {
        let ids = t.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(t.decode(&ids, false).unwrap(), text);
    }

    let out = dir.path().join("shards");
    let m = ok_json(&[
        os("data"),
        os("prepare"),
        os("-t"),
        tok.as_os_str(),
        os("-i"),
        a.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--separator"),
        os("<|endoftext|>"),
        os("--json"),
    ]);
    assert_eq!(m["separator"], "<|endoftext|>");
    let ds = kiln_train::TokenDataset::open(&out).unwrap();
    assert_eq!(ds.val.to_vec().last(), Some(&0), "ends with <|endoftext|>");

    hf_python_agrees(&tok, &texts);
}

/// The Python that has Hugging Face `tokenizers`: `$KILN_HF_PYTHON`, else the reference venv's.
fn hf_python() -> Option<PathBuf> {
    let py = std::env::var_os("KILN_HF_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/kiln/venv/bin/python")
        });
    let ok = Command::new(&py)
        .args(["-c", "import tokenizers"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// HF `tokenizers` in Python loads the file and gives kiln's ids and exact decodes.
fn hf_python_agrees(tok: &Path, texts: &[&str]) {
    let Some(py) = hf_python() else {
        common::skip(
            "no Python with Hugging Face tokenizers (run scripts/setup-reference.sh or set KILN_HF_PYTHON)",
        );
        return;
    };
    let t = kiln_train::load_tokenizer(tok).unwrap();
    let kiln_ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|s| t.encode(*s, false).unwrap().get_ids().to_vec())
        .collect();
    let script = "import json, sys\nfrom tokenizers import Tokenizer\n\
        t = Tokenizer.from_file(sys.argv[1])\ntexts = json.loads(sys.stdin.read())\n\
        ids = [t.encode(s, add_special_tokens=False).ids for s in texts]\n\
        ok = all(t.decode(i, skip_special_tokens=False) == s for i, s in zip(ids, texts))\n\
        print(json.dumps({'ids': ids, 'round_trip': ok}))\n";
    let mut child = Command::new(&py)
        .args([OsStr::new("-c"), OsStr::new(script), tok.as_os_str()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "HF tokenizers could not load {}",
        tok.display()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["round_trip"], true);
    assert_eq!(v["ids"], serde_json::json!(kiln_ids));
}

/// `kiln tokenizer train --out OUT EXTRA...`
fn train_args<'a>(out: &'a Path, extra: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut v = vec![os("tokenizer"), os("train"), os("--out"), out.as_os_str()];
    v.extend_from_slice(extra);
    v
}

/// `kiln data prepare --out SHARDS --tokenizer TOK EXTRA...`
fn prepare_args<'a>(shards: &'a Path, tok: &'a Path, extra: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut v = vec![os("data"), os("prepare"), os("--out"), shards.as_os_str()];
    v.extend([os("--tokenizer"), tok.as_os_str()]);
    v.extend_from_slice(extra);
    v
}

/// Bad input: non-zero exit, one `error:` line naming the problem, never a panic.
fn assert_error(args: &[&OsStr], mentions: &[&str]) {
    let out = kiln()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let err = stderr.trim_end();
    assert!(!out.status.success(), "{args:?} exited 0");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    for m in mentions {
        assert!(
            err.to_lowercase().contains(&m.to_lowercase()),
            "{args:?}: {err:?} does not mention {m:?}"
        );
    }
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write(d, "good.txt", A.as_bytes());
    let e1 = write(d, "empty1.txt", b"");
    let e2 = write(d, "empty2.txt", b"");
    let latin1 = write(d, "latin1.txt", b"caf\xe9 au lait");
    let missing = d.join("missing.txt");
    let out = d.join("tok.json");
    let g = good.as_os_str();

    assert_error(&train_args(&out, &[os("--input"), g]), &["--vocab-size"]);
    assert_error(
        &train_args(&out, &[os("--input"), g, os("--vocab-size"), os("100")]),
        &["vocab_size 100", "257"],
    );
    assert_error(
        &train_args(
            &out,
            &[
                os("--input"),
                g,
                missing.as_os_str(),
                os("--vocab-size"),
                os("300"),
            ],
        ),
        &["missing.txt", "no such file"],
    );
    assert_error(
        &train_args(
            &out,
            &[os("--input"), latin1.as_os_str(), os("--kind"), os("char")],
        ),
        &["latin1.txt", "UTF-8", "offset 3"],
    );
    assert_error(
        &train_args(
            &out,
            &[
                os("--input"),
                e1.as_os_str(),
                e2.as_os_str(),
                os("--kind"),
                os("char"),
            ],
        ),
        &["empty corpus", "empty1.txt", "empty2.txt"],
    );
    assert_error(
        &train_args(
            &out,
            &[
                os("--input"),
                g,
                os("--vocab-size"),
                os("300"),
                os("--special"),
                os("<|café|>"),
            ],
        ),
        &["<|café|>", "ASCII"],
    );
    assert!(!out.exists(), "a failed run wrote {}", out.display());

    // A char tokenizer for prepare, and one with 70,000 characters (too many for u16).
    let char_tok = d.join("char.json");
    let wide_text: String = (0x20000u32..0x20000 + 70_000)
        .filter_map(char::from_u32)
        .collect();
    let wide = write(d, "wide.txt", wide_text.as_bytes());
    let wide_tok = d.join("wide.json");
    for (input, tok) in [(&good, &char_tok), (&wide, &wide_tok)] {
        ok_json(&[
            os("tokenizer"),
            os("train"),
            os("--kind"),
            os("char"),
            os("-i"),
            input.as_os_str(),
            os("-o"),
            tok.as_os_str(),
            os("--json"),
        ]);
    }
    let shards = d.join("shards");
    assert_error(
        &prepare_args(
            &shards,
            &char_tok,
            &[os("-i"), e1.as_os_str(), e2.as_os_str()],
        ),
        &["empty corpus", "empty1.txt", "empty2.txt"],
    );
    assert_error(
        &prepare_args(&shards, &char_tok, &[os("-i"), g, missing.as_os_str()]),
        &["missing.txt", "no such file"],
    );
    assert_error(
        &prepare_args(&shards, &char_tok, &[os("-i"), latin1.as_os_str()]),
        &["latin1.txt", "offset 3"],
    );
    assert_error(
        &prepare_args(
            &shards,
            &wide_tok,
            &[os("-i"), wide.as_os_str(), os("--dtype"), os("u16")],
        ),
        &["70000", "u16"],
    );
    assert_error(
        &prepare_args(
            &shards,
            &char_tok,
            &[os("-i"), g, os("--val-fraction"), os("1.5")],
        ),
        &["val_fraction", "1.5"],
    );
    assert_error(
        &prepare_args(&shards, &missing, &[os("-i"), g]),
        &["missing.txt", "no such file"],
    );
    assert_error(
        &prepare_args(
            &shards,
            &char_tok,
            &[os("-i"), g, os("--separator"), os("<|eot|>")],
        ),
        &["<|eot|>"],
    );
    let unseen = write(d, "unseen.txt", "First Zebra".as_bytes());
    assert_error(
        &prepare_args(&shards, &char_tok, &[os("-i"), unseen.as_os_str()]),
        &["unseen.txt", "offset 6", "'Z'"],
    );
    assert!(!shards.exists(), "a failed run wrote {}", shards.display());
}

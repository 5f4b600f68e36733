//! What kiln's integration tests share: where the real assets and the reference Python live,
//! and skipping visibly when one is missing (or failing, under `KILN_REQUIRE_ASSETS=1`,
//! which `.ci/run` sets); the tiny random model behind an engine and the stream readers of
//! its requests ([`engine`]); and independent reference log-likelihoods and logits
//! ([`reference`]). A dev-dependency only.

pub mod engine;
pub mod reference;

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

/// `${KILN_ASSETS:-$HOME/.cache/kiln/assets}` (filled by `scripts/fetch-assets.sh` and
/// `scripts/setup-reference.sh`).
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("KILN_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/assets"),
    }
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

/// The reference Python (`${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}`) when it
/// can `import {modules}` (e.g. "torch, transformers"); `None` after [`skip`] otherwise.
pub fn python_importing(modules: &str) -> Option<PathBuf> {
    let py = match std::env::var_os("KILN_REF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/venv/bin/python"),
    };
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    skip(&format!(
        "{} cannot import {modules} (run scripts/setup-reference.sh)",
        py.display()
    ));
    None
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/llama_ref.py` (llama.cpp through llama-cpp-python) with one JSON request
/// and returns its JSON answer; panics with its stderr when it fails.
pub fn llama_ref(py: &std::path::Path, request: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
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

//! The official OpenAI Python client against a kiln server (scripts/openai_client_check.py):
//! chat, chat streaming, completions with echo + logprobs, the model list, a bad key.
//!
//! Runs `${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}` if it can `import openai`;
//! otherwise prints `SKIP: ...` and passes, unless `KILN_REQUIRE_ASSETS=1`
//! (`scripts/setup-reference.sh` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::TestServer;
use kiln_engine::EngineConfig;
use kiln_serve::ServeOptions;

fn skip(why: &str) {
    if std::env::var("KILN_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!("KILN_REQUIRE_ASSETS=1 but {why}");
    }
    eprintln!("SKIP: {why}");
}

fn python_with_openai() -> Option<PathBuf> {
    let py = match std::env::var_os("KILN_REF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/kiln/venv/bin/python"),
    };
    let ok = Command::new(&py)
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    skip(&format!(
        "{} cannot import openai (run scripts/setup-reference.sh)",
        py.display()
    ));
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn official_openai_client_works() {
    let Some(py) = python_with_openai() else {
        return;
    };
    let key = "sk-kiln-test";
    let opts = ServeOptions {
        api_keys: vec![key.into()],
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openai_client_check.py");
    let base = format!("{}/v1", s.url);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(&script)
            .args([base.as_str(), key, "tiny"])
            .output()
    })
    .await
    .unwrap()
    .expect("running openai_client_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "openai_client_check.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

//! The official OpenAI Python client against a kiln server (scripts/openai_client_check.py):
//! chat, chat streaming, completions with echo + logprobs, the model list, a bad key, and
//! embeddings (base64, the client's default, and floats) from a fake embedding model.
//!
//! Runs `${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}` if it can `import openai`;
//! otherwise prints `SKIP: ...` and passes, unless `KILN_REQUIRE_ASSETS=1`
//! (`scripts/setup-reference.sh` installs it).

mod common;

use std::path::Path;
use std::process::Command;

use common::{FakeEmbedder, TestServer};
use kiln_engine::EngineConfig;
use kiln_serve::ServeOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn official_openai_client_works() {
    let Some(py) = kiln_testing::python_importing("openai") else {
        return;
    };
    let key = "sk-kiln-test";
    let opts = ServeOptions {
        api_keys: vec![key.into()],
        ..ServeOptions::default()
    };
    let s = TestServer::start_with_embedder(
        &["tiny"],
        EngineConfig::default(),
        opts,
        Some(std::sync::Arc::new(FakeEmbedder)),
    )
    .await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openai_client_check.py");
    let base = format!("{}/v1", s.url);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(&script)
            .args([base.as_str(), key, "tiny", "fake-embedder"])
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

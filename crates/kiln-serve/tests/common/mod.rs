//! A kiln server on the tiny random model (no download), bound to port 0 in-process, and
//! helpers to talk to it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use kiln_engine::{EngineConfig, EngineHandle, StatsSnapshot};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_serve::{AppState, ServeError, ServeOptions};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The tiny model's context length.
pub const CONTEXT: usize = 256;

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    pub engine: EngineHandle,
    pub engines: Vec<EngineHandle>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dirs: Vec<tempfile::TempDir>,
}

pub fn tiny_engine(name: &str, config: EngineConfig) -> (tempfile::TempDir, EngineHandle) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), &TinyLlamaSpec::default()).unwrap();
    let loaded = kiln_model::load(dir.path(), &candle_core::Device::Cpu).unwrap();
    let engine = kiln_engine::start(loaded, name, config).unwrap();
    (dir, engine)
}

impl TestServer {
    pub async fn start(config: EngineConfig, options: ServeOptions) -> Self {
        Self::start_models(&["tiny"], config, options).await
    }

    /// One engine per name, each on its own copy of the tiny model.
    pub async fn start_models(names: &[&str], config: EngineConfig, options: ServeOptions) -> Self {
        Self::start_with_embedder(names, config, options, None).await
    }

    /// As `start_models`, serving `/v1/embeddings` with `embedder`.
    pub async fn start_with_embedder(
        names: &[&str],
        config: EngineConfig,
        options: ServeOptions,
        embedder: Option<Arc<dyn kiln_serve::EmbeddingModel>>,
    ) -> Self {
        let (dirs, engines): (Vec<_>, Vec<_>) =
            names.iter().map(|n| tiny_engine(n, config.clone())).unzip();
        let state = AppState::with_embedder(engines.clone(), options, embedder).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(kiln_serve::server::serve(
            listener,
            state.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            state,
            engine: engines[0].clone(),
            engines,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
            _dirs: dirs,
        }
    }

    pub async fn default() -> Self {
        Self::start(EngineConfig::default(), ServeOptions::default()).await
    }

    /// Starts the graceful shutdown; `join` waits for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn join(&mut self) {
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    /// POSTs JSON; returns the status and the JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.post(path).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, v)
    }

    /// Waits (up to 20 s) until the engine has nothing waiting or running and no KV
    /// blocks in use; returns the last stats.
    pub async fn wait_idle(&self) -> StatsSnapshot {
        let mut s = self.engine.stats();
        for _ in 0..400 {
            s = self.engine.stats();
            if s.waiting == 0 && s.running == 0 && s.kv_blocks_used == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }
}

/// A deterministic embedding model: a text of n characters is [cos n, sin n, 0, 0], and
/// each character is a token.
pub struct FakeEmbedder;

impl kiln_serve::EmbeddingModel for FakeEmbedder {
    fn name(&self) -> &str {
        "fake-embedder"
    }
    fn dim(&self) -> usize {
        4
    }
    fn max_input_tokens(&self) -> usize {
        128
    }
    fn count_tokens(&self, text: &str) -> Result<usize, String> {
        Ok(text.chars().count())
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        Ok(texts
            .iter()
            .map(|t| {
                let n = t.chars().count() as f32;
                vec![n.cos(), n.sin(), 0.0, 0.0]
            })
            .collect())
    }
}

impl TestServer {
    /// Every engine's stats once none has anything waiting or running (up to 20 s).
    pub async fn wait_idle_all(&self) -> Vec<StatsSnapshot> {
        for _ in 0..400 {
            let st: Vec<_> = self.engines.iter().map(|e| e.stats()).collect();
            if st.iter().all(|s| s.waiting == 0 && s.running == 0) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.engines.iter().map(|e| e.stats()).collect()
    }
}

/// The `data:` payloads of a server-sent event stream.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Asserts OpenAI's error shape and status; returns the error object.
pub fn assert_error(status: u16, body: &Value, want_status: u16) -> Value {
    assert_eq!(status, want_status, "{body}");
    let e = body["error"].clone();
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    e
}

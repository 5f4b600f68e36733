//! `kiln serve`: an OpenAI-compatible HTTP server over one engine per model. Only wiring:
//! the server is `kiln_serve`, the engine `kiln_engine`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use kiln_engine::EngineConfig;
use kiln_serve::{AppState, ModelSpec, RateLimits, ServeOptions};

/// Serve models over an OpenAI-compatible HTTP API.
///
/// Routes: POST /v1/chat/completions and /v1/completions (streaming with "stream": true),
/// GET /v1/models, GET /health, GET /metrics (Prometheus). Any OpenAI client works: point
/// its base URL at http://HOST:PORT/v1.
///
/// Each model gets its own engine (continuous batching over a paged KV cache); a request
/// picks one with its "model" field. With --api-key or --api-key-file, /v1 routes need
/// `Authorization: Bearer KEY`, and rate limits count per key. Ctrl-C or SIGTERM stops
/// accepting connections, finishes the requests in flight, then exits. `--log info`
/// (the default for this command) logs one line per request.
///
/// Example: kiln serve --model smol=SmolLM2-135M-Instruct.Q4_1.gguf --port 8080
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// A model to serve: NAME=PATH, or PATH (named by its file stem); PATH is a GGUF file
    /// or a Hugging Face model directory. Repeat to serve several models.
    #[arg(long = "model", short = 'm', required = true, value_name = "NAME=PATH")]
    pub models: Vec<String>,
    /// Address to listen on (0.0.0.0 for all interfaces).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// KV-cache memory per model, in MiB; sets how many tokens can be in flight at once.
    #[arg(long, default_value_t = EngineConfig::default().kv_cache_mb)]
    pub kv_cache_mb: usize,
    /// Sequences decoded together in one step, at most.
    #[arg(long, default_value_t = EngineConfig::default().max_num_seqs)]
    pub max_num_seqs: usize,
    /// Tokens (prompt chunks plus decodes) per model step, at most.
    #[arg(long, default_value_t = EngineConfig::default().max_num_batched_tokens)]
    pub max_batched_tokens: usize,
    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = EngineConfig::default().block_size)]
    pub block_size: usize,
    /// Do not reuse the KV cache of prompt prefixes seen before.
    #[arg(long)]
    pub no_prefix_caching: bool,
    /// Requests waiting for a slot, at most, per model; more get 503 (retry later).
    #[arg(long, default_value_t = EngineConfig::default().max_queue)]
    pub max_queue: usize,
    /// An accepted API key (repeatable). Without any key, the API is open.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// A file of accepted API keys, one per line (blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Requests per minute per key (per server without keys); over it: 429 + Retry-After.
    #[arg(long, value_name = "N")]
    pub rate_limit_rpm: Option<u32>,
    /// Tokens per minute per key: prompt plus max_tokens of each admitted request.
    #[arg(long, value_name = "N")]
    pub rate_limit_tpm: Option<u64>,
    /// Cancel a request still running after this many seconds (504, or an error event
    /// in a stream). 0 disables.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub request_timeout: f64,
    /// Largest request body, in MiB; larger ones get 413.
    #[arg(long, value_name = "MIB", default_value_t = 8.0)]
    pub max_body_mb: f64,
    /// A sentence-transformers model directory (e.g. all-MiniLM-L6-v2) served at
    /// /v1/embeddings under its directory's name, or NAME=DIR.
    #[arg(long, value_name = "[NAME=]DIR")]
    pub embedder: Option<String>,
}

/// kiln-rag's embedder as the server's embedding model.
struct ServedEmbedder {
    name: String,
    embedder: kiln_rag::Embedder,
}

impl kiln_serve::EmbeddingModel for ServedEmbedder {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        self.embedder.dim()
    }
    fn max_input_tokens(&self) -> usize {
        self.embedder.max_tokens()
    }
    fn count_tokens(&self, text: &str) -> Result<usize, String> {
        self.embedder.count_tokens(text).map_err(|e| e.to_string())
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.embedder.embed(texts, 32).map_err(|e| e.to_string())
    }
}

fn load_embedder(spec: &str) -> Result<std::sync::Arc<dyn kiln_serve::EmbeddingModel>> {
    let (name, dir) = match spec.split_once('=') {
        Some((n, d)) if !n.is_empty() && !std::path::Path::new(spec).exists() => {
            (Some(n.to_string()), PathBuf::from(d))
        }
        _ => (None, PathBuf::from(spec)),
    };
    let embedder = kiln_rag::Embedder::load(&dir)
        .with_context(|| format!("loading the embedder {}", dir.display()))?;
    let name = name.unwrap_or_else(|| embedder.name.clone());
    eprintln!("embedder {name:?} from {} at /v1/embeddings", dir.display());
    Ok(std::sync::Arc::new(ServedEmbedder { name, embedder }))
}

impl Args {
    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            block_size: self.block_size,
            kv_cache_mb: self.kv_cache_mb,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_batched_tokens,
            max_queue: self.max_queue,
            enable_prefix_caching: !self.no_prefix_caching,
        }
    }

    fn options(&self) -> Result<ServeOptions> {
        let mut api_keys = self.api_keys.clone();
        if let Some(path) = &self.api_key_file {
            api_keys.extend(kiln_serve::auth::read_key_file(path)?);
        }
        if !(self.request_timeout.is_finite() && self.request_timeout >= 0.0) {
            bail!("--request-timeout must be a number of seconds >= 0");
        }
        if !(self.max_body_mb.is_finite() && self.max_body_mb > 0.0) {
            bail!("--max-body-mb must be above 0");
        }
        Ok(ServeOptions {
            api_keys,
            rate_limits: RateLimits {
                requests_per_minute: self.rate_limit_rpm,
                tokens_per_minute: self.rate_limit_tpm,
            },
            request_timeout: (self.request_timeout > 0.0)
                .then(|| Duration::from_secs_f64(self.request_timeout)),
            max_body_bytes: (self.max_body_mb * (1 << 20) as f64) as usize,
        })
    }
}

pub fn run(a: Args) -> Result<()> {
    let options = a.options()?;
    let specs = a
        .models
        .iter()
        .map(|s| ModelSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut engines = Vec::with_capacity(specs.len());
    for spec in &specs {
        let loaded = kiln_model::load(&spec.path, &crate::common::device())
            .with_context(|| format!("loading {}", spec.path.display()))?;
        let engine = kiln_engine::start(loaded, &spec.name, a.engine_config())
            .with_context(|| format!("starting the engine of {}", spec.name))?;
        eprintln!("model {:?} from {}", spec.name, spec.path.display());
        engines.push(engine);
    }
    let keys = options.api_keys.len();
    let embedder = a.embedder.as_deref().map(load_embedder).transpose()?;
    let state = AppState::with_embedder(engines, options, embedder)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = kiln_serve::server::bind(&a.host, a.port).await?;
        let addr = listener.local_addr()?;
        let auth = if keys == 0 {
            "no API key required".to_string()
        } else {
            format!("{keys} API key(s)")
        };
        eprintln!("serving on http://{addr}/v1 ({auth}); Ctrl-C to stop");
        kiln_serve::server::serve(listener, state, kiln_serve::server::shutdown_signal()).await
    })?;
    eprintln!("stopped");
    Ok(())
}

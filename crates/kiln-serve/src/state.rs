//! What every request handler shares: the models, the options, the keys and limits, the
//! metrics, and whether the server is shutting down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::auth::ApiKeys;
use crate::embeddings::EmbeddingModel;
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::options::ServeOptions;
use crate::rate_limit::RateLimiter;
use crate::registry::ModelRegistry;

pub struct AppState {
    pub models: ModelRegistry,
    pub options: ServeOptions,
    pub keys: ApiKeys,
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
    /// Serves `/v1/embeddings` when present.
    pub embedder: Option<Arc<dyn EmbeddingModel>>,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(
        engines: Vec<kiln_engine::EngineHandle>,
        options: ServeOptions,
    ) -> Result<Arc<Self>, ServeError> {
        Self::with_embedder(engines, options, None)
    }

    /// A state that also serves `/v1/embeddings` with `embedder`.
    pub fn with_embedder(
        engines: Vec<kiln_engine::EngineHandle>,
        options: ServeOptions,
        embedder: Option<Arc<dyn EmbeddingModel>>,
    ) -> Result<Arc<Self>, ServeError> {
        if options.max_body_bytes == 0 {
            return Err(ServeError::Option("the body limit must be above 0".into()));
        }
        let models = ModelRegistry::new(engines)?;
        let metrics = Metrics::new(models.entries().iter().map(|e| e.name()));
        Ok(Arc::new(Self {
            keys: ApiKeys::new(options.api_keys.iter().cloned()),
            limiter: RateLimiter::new(options.rate_limits),
            metrics: Arc::new(metrics),
            embedder,
            models,
            options,
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// Stops the engines taking new requests (they finish the ones they have); `/health`
    /// reports 503 from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for e in self.models.entries() {
            e.engine.shutdown();
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

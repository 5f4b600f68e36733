//! The axum application: shared state and the router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::ApiKeys;
use crate::embeddings::EmbeddingModel;
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::openai::error::ApiError;
use crate::options::ServeOptions;
use crate::rate_limit::RateLimiter;
use crate::registry::ModelRegistry;
use crate::routes;

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

/// The whole HTTP API over `state`'s engines.
pub fn app(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(routes::chat::chat_completions))
        .route("/completions", post(routes::completions::completions))
        .route("/embeddings", post(routes::embeddings::embeddings))
        .route("/models", get(routes::models::list))
        .route("/models/{*model}", get(routes::models::retrieve))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(routes::health::health))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("internal error while handling the request").into_response()
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::request_log::track,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::route_not_found(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

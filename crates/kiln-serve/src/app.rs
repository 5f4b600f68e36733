//! The axum application: the router over the shared [`AppState`]. Routes depend on the
//! state, never on this file, so the router is the only module that knows them all.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::openai::error::ApiError;
use crate::routes;
use crate::state::AppState;

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
    // vLLM's tokenizer routes sit beside /v1, behind the same keys.
    let tokenize = Router::new()
        .route("/tokenize", post(routes::tokenize::tokenize))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ));
    Router::new()
        .nest("/v1", v1)
        .merge(tokenize)
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

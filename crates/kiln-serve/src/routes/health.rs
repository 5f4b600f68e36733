//! `GET /health`: 200 while serving, 503 once shutdown has begun (so a load balancer
//! stops sending traffic).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let models: Vec<&str> = state.models.entries().iter().map(|e| e.name()).collect();
    if state.is_shutting_down() {
        let body = json!({"status": "shutting_down", "models": models});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    (
        StatusCode::OK,
        Json(json!({"status": "ok", "models": models})),
    )
}

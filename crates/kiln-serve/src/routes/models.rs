//! `GET /v1/models` and `GET /v1/models/{model}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use crate::app::AppState;
use crate::openai::common::{ModelCard, ModelList};
use crate::openai::error::ApiError;
use crate::registry::ModelEntry;

fn card(e: &ModelEntry) -> ModelCard {
    ModelCard {
        id: e.name().to_string(),
        object: "model",
        created: 0,
        owned_by: "kiln",
        max_model_len: e.engine.context_length(),
    }
}

pub async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: state.models.entries().iter().map(card).collect(),
    })
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    state.models.resolve(Some(&model)).map(|e| Json(card(e)))
}

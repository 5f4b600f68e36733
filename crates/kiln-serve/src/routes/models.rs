//! `GET /v1/models` and `GET /v1/models/{model}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use crate::openai::common::{ModelCard, ModelList};
use crate::openai::error::ApiError;
use crate::registry::ModelEntry;
use crate::state::AppState;

fn card(e: &ModelEntry) -> ModelCard {
    ModelCard {
        id: e.name().to_string(),
        object: "model",
        created: 0,
        owned_by: "kiln",
        max_model_len: e.engine.context_length(),
    }
}

/// The embedding model's card, when `model` names it (or any is asked for).
fn embedder_card(state: &AppState, model: Option<&str>) -> Option<ModelCard> {
    let e = state.embedder.as_ref()?;
    model.is_none_or(|m| m == e.name()).then(|| ModelCard {
        id: e.name().to_string(),
        object: "model",
        created: 0,
        owned_by: "kiln",
        max_model_len: e.max_input_tokens(),
    })
}

pub async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    let mut data: Vec<ModelCard> = state.models.entries().iter().map(card).collect();
    data.extend(embedder_card(&state, None));
    Json(ModelList {
        object: "list",
        data,
    })
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    if let Some(c) = embedder_card(&state, Some(&model)) {
        return Ok(Json(c));
    }
    state.models.resolve(Some(&model)).map(|e| Json(card(e)))
}

//! The models a server serves, by API name, each with its own engine.

use kiln_engine::EngineHandle;

use crate::error::ServeError;
use crate::openai::error::ApiError;

pub struct ModelEntry {
    pub engine: EngineHandle,
}

impl ModelEntry {
    fn new(engine: EngineHandle) -> Self {
        Self { engine }
    }

    pub fn name(&self) -> &str {
        self.engine.model_name()
    }
}

pub struct ModelRegistry {
    entries: Vec<ModelEntry>,
}

impl ModelRegistry {
    pub fn new(engines: Vec<EngineHandle>) -> Result<Self, ServeError> {
        if engines.is_empty() {
            return Err(ServeError::NoModel);
        }
        let mut entries: Vec<ModelEntry> = Vec::with_capacity(engines.len());
        for e in engines {
            if entries.iter().any(|x| x.name() == e.model_name()) {
                return Err(ServeError::DuplicateModel(e.model_name().to_string()));
            }
            entries.push(ModelEntry::new(e));
        }
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn engines(&self) -> Vec<EngineHandle> {
        self.entries.iter().map(|e| e.engine.clone()).collect()
    }

    /// The entry a request's `model` names; with one model, `model` may be left out.
    pub fn resolve(&self, model: Option<&str>) -> Result<&ModelEntry, ApiError> {
        match model {
            Some(name) => self
                .entries
                .iter()
                .find(|e| e.name() == name)
                .ok_or_else(|| ApiError::model_not_found(name)),
            None if self.entries.len() == 1 => Ok(&self.entries[0]),
            None => Err(ApiError::invalid(
                "model",
                "You must provide a model parameter (this server has several models; see \
                 /v1/models).",
            )),
        }
    }
}

//! The models a server serves, by API name, each with its own engine.

use kiln_engine::EngineHandle;
use kiln_model::ChatTemplate;

use crate::error::ServeError;
use crate::openai::error::ApiError;

pub struct ModelEntry {
    pub engine: EngineHandle,
    /// ChatML, for a model without a template whose tokenizer has ChatML's tokens (as
    /// `kiln chat` does).
    fallback_template: Option<ChatTemplate>,
}

impl ModelEntry {
    fn new(engine: EngineHandle) -> Self {
        let has_chatml = engine.tokenizer().token_to_id("<|im_start|>").is_some();
        let fallback_template = (engine.chat_template().is_none() && has_chatml)
            .then(|| ChatTemplate::new(kiln_model::chat_template::CHATML, "", "").ok())
            .flatten();
        Self {
            engine,
            fallback_template,
        }
    }

    pub fn name(&self) -> &str {
        self.engine.model_name()
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.engine
            .chat_template()
            .or(self.fallback_template.as_ref())
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

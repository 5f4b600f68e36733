//! What fine-tuning trains: a frozen base model (quantized stays quantized: QLoRA) with a
//! LoRA adapter's factors as the only parameters, saved in PEFT's layout at every
//! checkpoint and at the end.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use kiln_model::config::ModelConfig;
use kiln_model::lora::{load_adapter, save_adapter, LoraSet};
use kiln_model::weights::vars::Param;
use kiln_model::{loader, CausalLM, ModelError};

use super::config::FinetuneConfig;
use crate::error::{Result, TrainError};
use crate::training::objective::Trainable;

/// The base model with fresh trainable factors attached, and those factors.
pub struct AdaptedModel {
    pub loaded: loader::LoadedModel,
    pub lora: Arc<LoraSet>,
    pub params: Vec<Param>,
}

pub fn load_adapted(cfg: &FinetuneConfig, dev: &Device) -> Result<AdaptedModel> {
    let lora_cfg = cfg.lora_config();
    let mut made = None;
    let loaded = loader::load_with_lora(&cfg.model.path, dev, |base| {
        let init = match &cfg.lora.init {
            Some(dir) => Some(load_adapter(dir, base, dev)?),
            None => None,
        };
        let (set, params) =
            LoraSet::trainable(&lora_cfg, base, cfg.train.seed, dev, init.as_ref())?;
        let set = Arc::new(set);
        made = Some((set.clone(), params));
        Ok::<_, ModelError>(Some(set))
    })?;
    let Some((lora, params)) = made else {
        return Err(TrainError::InvalidArgument(
            "no adapter was attached".into(),
        ));
    };
    Ok(AdaptedModel {
        loaded,
        lora,
        params,
    })
}

impl Trainable for AdaptedModel {
    fn model(&self) -> &dyn CausalLM {
        &*self.loaded.model
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn model_config(&self) -> &ModelConfig {
        &self.loaded.info.config
    }
    fn set_dropout_seed(&self, seed: Option<u64>) {
        self.lora.set_dropout_seed(seed);
    }
    fn save(&self, run: &Path, _end: bool) -> Result<()> {
        Ok(save_adapter(
            run,
            &self.lora.to_adapter()?,
            self.model_config(),
        )?)
    }
}

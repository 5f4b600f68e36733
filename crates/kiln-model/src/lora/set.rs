//! All of an adapter's layers as the model uses them: [`LoraDelta`]s by module path
//! (`model.layers.3.self_attn.q_proj`), handed to [`crate::weights::Weights::with_lora`] so
//! `Weights::linear` attaches each to its base layer while the model loads. The model code
//! itself never mentions LoRA.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::adapter_file::{LoraAdapter, LoraWeights};
use super::config::LoraConfig;
use super::delta::LoraDelta;
use super::target::{LoraFactor, LoraTarget};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::weights::vars::Param;

#[derive(Debug)]
pub struct LoraSet {
    config: LoraConfig,
    deltas: HashMap<String, Arc<LoraDelta>>,
    /// The trainable factors, when the set was made for training.
    vars: BTreeMap<LoraTarget, (Var, Var)>,
    dropout_seed: Arc<AtomicU64>,
}

/// `model.layers.3.self_attn.q_proj`: where `Weights::linear` finds the layer's delta.
fn module_path(target: &LoraTarget) -> String {
    let name = target.base_weight_name();
    name.trim_end_matches(".weight").to_string()
}

impl LoraSet {
    /// A loaded adapter, for inference.
    pub fn from_adapter(adapter: &LoraAdapter) -> Result<Self> {
        let factors = adapter
            .weights
            .iter()
            .map(|(t, w)| Ok((*t, w.a.to_dtype(DType::F32)?, w.b.to_dtype(DType::F32)?)));
        Self::build(
            adapter.config.clone(),
            factors.collect::<Result<Vec<_>>>()?,
            BTreeMap::new(),
        )
    }

    /// Fresh trainable factors for every targeted layer of `base`, initialised as PEFT does:
    /// A uniform in ±1/√in (Kaiming-uniform with a = √5), B zero, so the adapted model
    /// starts equal to the base. Returns the parameters to optimise (PEFT's tensor names).
    ///
    /// With `init`, the factors start as that adapter's instead (continuing an SFT adapter
    /// with DPO); its rank, scaling and modules must be `config`'s.
    pub fn trainable(
        config: &LoraConfig,
        base: &ModelConfig,
        seed: u64,
        device: &Device,
        init: Option<&LoraAdapter>,
    ) -> Result<(Self, Vec<Param>)> {
        config.validate()?;
        if let Some(a) = init {
            let c = &a.config;
            let mut mine = config.target_modules.clone();
            let mut theirs = c.target_modules.clone();
            mine.sort();
            theirs.sort();
            if (c.r, c.alpha, c.use_rslora, &theirs)
                != (config.r, config.alpha, config.use_rslora, &mine)
            {
                return Err(ModelError::LoraConfig(format!(
                    "the initial adapter has r {}, alpha {}, rslora {}, modules {:?}; the config \
                     asks for r {}, alpha {}, rslora {}, modules {:?}",
                    c.r,
                    c.alpha,
                    c.use_rslora,
                    theirs,
                    config.r,
                    config.alpha,
                    config.use_rslora,
                    mine
                )));
            }
        }
        let modules = config.modules()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut factors, mut vars, mut params) = (vec![], BTreeMap::new(), vec![]);
        for layer in 0..base.num_layers {
            for &module in &modules {
                let Some((fan_in, fan_out)) = module.features(base) else {
                    return Err(ModelError::LoraConfig(format!(
                        "target module {} is not in this model (its MLP has no gate)",
                        module.name()
                    )));
                };
                let target = LoraTarget::new(layer, module);
                let bound = 1.0 / (fan_in as f32).sqrt();
                let a: Vec<f32> = (0..config.r * fan_in)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let (a, b) = match init {
                    Some(adapter) => {
                        let w = adapter.weights.get(&target).ok_or_else(|| {
                            ModelError::LoraConfig(format!(
                                "the initial adapter has no factors for {}",
                                target.base_weight_name()
                            ))
                        })?;
                        (
                            Var::from_tensor(&w.a.to_dtype(DType::F32)?.to_device(device)?)?,
                            Var::from_tensor(&w.b.to_dtype(DType::F32)?.to_device(device)?)?,
                        )
                    }
                    None => (
                        Var::from_tensor(&Tensor::from_vec(a, (config.r, fan_in), device)?)?,
                        Var::zeros((fan_out, config.r), DType::F32, device)?,
                    ),
                };
                for (factor, var) in [(LoraFactor::A, &a), (LoraFactor::B, &b)] {
                    params.push(Param {
                        name: target.peft_tensor_name(factor),
                        var: var.clone(),
                        decay: true,
                    });
                }
                factors.push((target, a.as_tensor().clone(), b.as_tensor().clone()));
                vars.insert(target, (a, b));
            }
        }
        Ok((Self::build(config.clone(), factors, vars)?, params))
    }

    fn build(
        config: LoraConfig,
        factors: Vec<(LoraTarget, Tensor, Tensor)>,
        vars: BTreeMap<LoraTarget, (Var, Var)>,
    ) -> Result<Self> {
        let dropout_seed = Arc::new(AtomicU64::new(0));
        let deltas = factors
            .into_iter()
            .enumerate()
            .map(|(i, (target, a, b))| {
                let delta = LoraDelta::new(
                    a,
                    b,
                    config.scaling(),
                    config.dropout as f32,
                    i as u64 + 1,
                    dropout_seed.clone(),
                );
                (module_path(&target), Arc::new(delta))
            })
            .collect();
        Ok(Self {
            config,
            deltas,
            vars,
            dropout_seed,
        })
    }

    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The delta for the linear layer at `module_path`, if the adapter targets it.
    pub fn get(&self, module_path: &str) -> Option<Arc<LoraDelta>> {
        self.deltas.get(module_path).cloned()
    }

    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Turns dropout on for one training micro-step (`Some(seed)`, any seed but 0 giving
    /// its own masks) or off (`None`: evaluation).
    pub fn set_dropout_seed(&self, seed: Option<u64>) {
        let s = seed.map(|s| s.max(1)).unwrap_or(0);
        self.dropout_seed.store(s, Ordering::Relaxed);
    }

    /// The trainable factors' current values as an adapter (to save in PEFT's layout).
    pub fn to_adapter(&self) -> Result<LoraAdapter> {
        let weights = self
            .vars
            .iter()
            .map(|(t, (a, b))| {
                let w = LoraWeights {
                    a: a.as_tensor().detach().copy()?,
                    b: b.as_tensor().detach().copy()?,
                };
                Ok((*t, w))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(LoraAdapter {
            config: self.config.clone(),
            weights,
        })
    }
}

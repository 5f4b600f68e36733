//! Trainable weights: every parameter of [`crate::params::parameter_specs`] as a candle
//! `Var`, initialised from a seed, served to the model through [`WeightSource`] so training
//! builds the very model that inference loads.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::layers::Weight;
use crate::params::{parameter_specs, Init};
use crate::weights::WeightSource;

/// One trainable parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

pub struct VarWeights {
    vars: HashMap<String, Var>,
    device: Device,
}

impl VarWeights {
    /// Fresh parameters for `cfg`, the same for the same seed on every machine.
    pub fn init(
        cfg: &ModelConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<(Arc<Self>, Vec<Param>)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut vars = HashMap::new();
        let mut params = vec![];
        for spec in parameter_specs(cfg) {
            let n: usize = spec.shape.iter().product();
            let data = match spec.init {
                Init::Normal(std) => normal(&mut rng, n, std),
                Init::Ones => vec![1.0; n],
                Init::Zeros => vec![0.0; n],
            };
            let t = Tensor::from_vec(data, spec.shape.as_slice(), device)?.to_dtype(dtype)?;
            let var = Var::from_tensor(&t)?;
            vars.insert(spec.name.clone(), var.clone());
            params.push(Param {
                name: spec.name,
                var,
                decay: spec.decay,
            });
        }
        let source = Arc::new(Self {
            vars,
            device: device.clone(),
        });
        Ok((source, params))
    }
}

impl WeightSource for VarWeights {
    fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    fn get(&self, name: &str) -> Result<Weight> {
        self.vars
            .get(name)
            .map(|v| Weight::Dense(v.as_tensor().clone()))
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// Box–Muller normals from a seeded generator: identical on every platform.
pub(crate) fn normal(rng: &mut StdRng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f32 = rng.random::<f32>().max(1e-7);
            let u2: f32 = rng.random();
            std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        })
        .collect()
}

//! AdamW (Loshchilov & Hutter, 2019) with decoupled weight decay, in PyTorch's
//! formulation so runs compare with nanoGPT: `p ← p·(1 − lr·wd)`, then the bias-corrected
//! Adam step `p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)`. Parameters that should not
//! decay (norms, biases, embeddings) are marked when added. The moments are plain tensors so
//! a checkpoint can save and restore them exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var, WithDType};

/// The scalars of one step for one parameter.
#[derive(Clone, Copy)]
struct Coefs {
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// 1 − lr·wd, or 1 without decay.
    decay: f64,
    /// lr / (1 − β₁ᵗ)
    step: f64,
    inv_sqrt_bc2: f64,
    /// Factor on every gradient as it is read (global-norm clipping's).
    grad_scale: f64,
}

/// One parameter's update in a single pass over w, g, m and v (in f64, stored back in the
/// parameter's type); returns the new (w, m, v). As tensor ops the same update is a dozen
/// passes and allocations per parameter.
fn update<T: WithDType>(
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: Coefs,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let host = |t: &Tensor| t.flatten_all()?.to_vec1::<T>();
    let (mut w1, g, mut m1, mut v1) = (host(w)?, host(g)?, host(m)?, host(v)?);
    if g.len() != w1.len() || m1.len() != w1.len() || v1.len() != w1.len() {
        candle_core::bail!("AdamW: gradient or moments do not match the parameter's shape")
    }
    for i in 0..w1.len() {
        let gi = g[i].to_f64() * k.grad_scale;
        let mi = k.beta1 * m1[i].to_f64() + (1.0 - k.beta1) * gi;
        let vi = k.beta2 * v1[i].to_f64() + (1.0 - k.beta2) * gi * gi;
        let denom = vi.sqrt() * k.inv_sqrt_bc2 + k.eps;
        w1[i] = T::from_f64(w1[i].to_f64() * k.decay - k.step * mi / denom);
        m1[i] = T::from_f64(mi);
        v1[i] = T::from_f64(vi);
    }
    let shape = w.shape();
    Ok((
        Tensor::from_vec(w1, shape, w.device())?,
        Tensor::from_vec(m1, shape, w.device())?,
        Tensor::from_vec(v1, shape, w.device())?,
    ))
}

/// Hyper-parameters (PyTorch's defaults except the decay nanoGPT uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

#[derive(Debug)]
pub struct AdamW {
    params: Vec<Param>,
    cfg: AdamWConfig,
    step: u64,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        Self {
            params: vec![],
            cfg,
            step: 0,
        }
    }

    /// Adds a parameter; `decay` is false for norms, biases and embeddings.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        var: Var,
        decay: bool,
    ) -> candle_core::Result<()> {
        let m = var.as_tensor().zeros_like()?;
        let v = m.clone();
        self.params.push(Param {
            name: name.into(),
            var,
            decay,
            m,
            v,
        });
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update at learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.step_scaled(grads, lr, 1.0)
    }

    /// [`AdamW::step`] on the gradients times `grad_scale` (a clipping factor from
    /// [`crate::optim::clip::clip_scale`]), without writing the scaled gradients out first.
    pub fn step_scaled(
        &mut self,
        grads: &GradStore,
        lr: f64,
        grad_scale: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bc1 = 1.0 - beta1.powi(self.step as i32);
        let bc2 = 1.0 - beta2.powi(self.step as i32);
        let k = Coefs {
            beta1,
            beta2,
            eps,
            decay: 1.0 - lr * weight_decay,
            step: lr / bc1,
            inv_sqrt_bc2: 1.0 / bc2.sqrt(),
            grad_scale,
        };
        // Parameters update independently: one task each on candle's worker pool (the
        // largest take longest, and the pool hands out tasks dynamically).
        type Updated = candle_core::Result<Option<(Tensor, Tensor, Tensor)>>;
        let results: Vec<std::sync::Mutex<Option<Updated>>> = self
            .params
            .iter()
            .map(|_| std::sync::Mutex::new(None))
            .collect();
        let params = &self.params;
        let one = |i: usize| -> Updated {
            let p = &params[i];
            let Some(g) = grads.get(p.var.as_tensor()) else {
                return Ok(None);
            };
            let k = Coefs {
                decay: if p.decay { k.decay } else { 1.0 },
                ..k
            };
            Ok(Some(match p.var.dtype() {
                DType::F32 => update::<f32>(p.var.as_tensor(), g, &p.m, &p.v, k)?,
                DType::F64 => update::<f64>(p.var.as_tensor(), g, &p.m, &p.v, k)?,
                other => candle_core::bail!("AdamW: parameters must be f32 or f64, not {other:?}"),
            }))
        };
        candle_core::utils::barrier_pool().execute_chunked(params.len(), |range| {
            for i in range {
                let r = one(i);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            }
        });
        for (p, slot) in self.params.iter_mut().zip(results) {
            let r = slot
                .into_inner()
                .map_err(|_| candle_core::Error::Msg("AdamW: an update task panicked".into()))?;
            if let Some((w, m, v)) = r.transpose()?.flatten() {
                p.var.set(&w)?;
                (p.m, p.v) = (m, v);
            }
        }
        Ok(())
    }

    /// The moments by parameter name (`NAME.m`, `NAME.v`) for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for p in &self.params {
            out.insert(format!("{}.m", p.name), p.m.clone());
            out.insert(format!("{}.v", p.name), p.v.clone());
        }
        out
    }

    /// Restores what [`AdamW::state`] saved at step `step`; every parameter must be present
    /// with its shape, or the checkpoint does not belong to this model.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<(), String> {
        for p in &mut self.params {
            for (suffix, slot) in [("m", &mut p.m), ("v", &mut p.v)] {
                let key = format!("{}.{suffix}", p.name);
                let t = state
                    .get(&key)
                    .ok_or_else(|| format!("optimizer state has no `{key}`"))?;
                if t.dims() != slot.dims() {
                    return Err(format!(
                        "optimizer state `{key}` has shape {:?}, the model needs {:?}",
                        t.dims(),
                        slot.dims()
                    ));
                }
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// PyTorch's AdamW written out for one scalar, in f64.
    fn reference(p0: f64, grads: &[f64], lrs: &[f64], decay: bool, c: AdamWConfig) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, (g, lr)) in grads.iter().zip(lrs).enumerate() {
            let t = t as i32 + 1;
            if decay {
                p *= 1.0 - lr * c.weight_decay;
            }
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let bc1 = 1.0 - c.beta1.powi(t);
            let bc2 = 1.0 - c.beta2.powi(t);
            p -= lr / bc1 * m / (v.sqrt() / bc2.sqrt() + c.eps);
        }
        p
    }

    /// Runs `steps` updates where the gradient of each element is `g(step, element)`.
    fn run(opt: &mut AdamW, vars: &[Var], lrs: &[f64], g: impl Fn(usize, usize) -> f64) {
        for (s, lr) in lrs.iter().enumerate() {
            // A loss whose gradient is exactly g: Σ p · g.
            let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
            for var in vars {
                let n = var.as_tensor().elem_count();
                let gv: Vec<f64> = (0..n).map(|i| g(s, i)).collect();
                let gt = Tensor::from_vec(gv, n, &Device::Cpu).unwrap();
                loss = (loss + (var.as_tensor() * gt).unwrap().sum_all().unwrap()).unwrap();
            }
            let grads = loss.backward().unwrap();
            opt.step(&grads, *lr).unwrap();
        }
    }

    #[test]
    fn matches_pytorch_formulation_with_and_without_decay() {
        let cfg = AdamWConfig::default();
        let init = [0.5, -1.25, 2.0];
        let a = Var::new(&init, &Device::Cpu).unwrap();
        let b = Var::new(&init, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(cfg);
        opt.add("a", a.clone(), true).unwrap();
        opt.add("b", b.clone(), false).unwrap();
        let lrs = [1e-3, 2e-3, 5e-4, 1e-3];
        let g = |s: usize, i: usize| (s as f64 + 1.0) * 0.3 - i as f64 * 0.7;
        run(&mut opt, &[a.clone(), b.clone()], &lrs, g);
        for (var, decay) in [(&a, true), (&b, false)] {
            let got = var.as_tensor().to_vec1::<f64>().unwrap();
            for (i, p0) in init.iter().enumerate() {
                let grads: Vec<f64> = (0..lrs.len()).map(|s| g(s, i)).collect();
                let want = reference(*p0, &grads, &lrs, decay, cfg);
                assert!(
                    (got[i] - want).abs() < 1e-12,
                    "decay={decay} [{i}]: {} vs {want}",
                    got[i]
                );
            }
        }
    }

    /// The clipping factor applied inside the update equals clipping the gradients first.
    #[test]
    fn scaled_step_equals_a_step_on_clipped_gradients() {
        let vals = [0.5f64, -1.25, 2.0, 3.5];
        let (a, b) = (
            Var::new(&vals, &Device::Cpu).unwrap(),
            Var::new(&vals, &Device::Cpu).unwrap(),
        );
        let grads_of = |v: &Var| {
            let gt = Tensor::new(&[3.0f64, -4.0, 12.0, 0.5], &Device::Cpu).unwrap();
            (v.as_tensor() * gt)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let mut ga = grads_of(&a);
        let norm =
            crate::optim::clip::clip_grad_norm(&mut ga, std::slice::from_ref(&a), 1.0).unwrap();
        let mut opt_a = AdamW::new(AdamWConfig::default());
        opt_a.add("w", a.clone(), true).unwrap();
        opt_a.step(&ga, 1e-2).unwrap();

        let gb = grads_of(&b);
        let norm_b = crate::optim::clip::grad_norm(&gb, std::slice::from_ref(&b)).unwrap();
        assert_eq!(norm, norm_b);
        let scale = crate::optim::clip::clip_scale(norm_b, 1.0);
        assert!(scale < 1.0, "the gradient must be clipped here");
        let mut opt_b = AdamW::new(AdamWConfig::default());
        opt_b.add("w", b.clone(), true).unwrap();
        opt_b.step_scaled(&gb, 1e-2, scale).unwrap();
        assert_eq!(
            a.as_tensor().to_vec1::<f64>().unwrap(),
            b.as_tensor().to_vec1::<f64>().unwrap()
        );
    }

    #[test]
    fn restored_state_continues_identically() {
        let g = |s: usize, i: usize| ((s * 7 + i * 3) % 5) as f64 - 2.0;
        let lrs = [1e-2; 6];
        let whole = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default());
        opt.add("w", whole.clone(), true).unwrap();
        run(&mut opt, std::slice::from_ref(&whole), &lrs, g);

        let first = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let mut opt1 = AdamW::new(AdamWConfig::default());
        opt1.add("w", first.clone(), true).unwrap();
        run(&mut opt1, std::slice::from_ref(&first), &lrs[..3], g);
        let (state, step) = (opt1.state(), opt1.steps());
        let resumed = Var::from_tensor(first.as_tensor()).unwrap();
        let mut opt2 = AdamW::new(AdamWConfig::default());
        opt2.add("w", resumed.clone(), true).unwrap();
        opt2.restore(&state, step).unwrap();
        run(
            &mut opt2,
            std::slice::from_ref(&resumed),
            &lrs[3..],
            |s, i| g(s + 3, i),
        );
        assert_eq!(
            whole.as_tensor().to_vec1::<f64>().unwrap(),
            resumed.as_tensor().to_vec1::<f64>().unwrap()
        );
    }

    #[test]
    fn restore_names_a_missing_or_misshapen_moment() {
        let mut opt = AdamW::new(AdamWConfig::default());
        opt.add("w", Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap(), true)
            .unwrap();
        let err = opt.restore(&HashMap::new(), 3).unwrap_err();
        assert!(err.contains("w.m"), "{err}");
        let mut bad = HashMap::new();
        bad.insert(
            "w.m".to_string(),
            Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(),
        );
        bad.insert(
            "w.v".to_string(),
            Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap(),
        );
        let err = opt.restore(&bad, 3).unwrap_err();
        assert!(err.contains("shape"), "{err}");
    }
}

//! Gradient clipping by global norm (Pascanu et al., 2013), as PyTorch's
//! `clip_grad_norm_`: every gradient is scaled by `max / (‖g‖ + 1e-6)` when that is below 1.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Storage, Tensor, Var};

/// Σ g² in f64, read in place for a contiguous f32/f64 tensor (no squared copy).
fn sum_squares(g: &Tensor) -> candle_core::Result<f64> {
    {
        let (storage, layout) = g.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            match cpu {
                CpuStorage::F32(v) => {
                    return Ok(v[a..b].iter().map(|&x| (x as f64) * (x as f64)).sum());
                }
                CpuStorage::F64(v) => return Ok(v[a..b].iter().map(|&x| x * x).sum()),
                _ => {}
            }
        }
    }
    g.sqr()?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()
}

/// The global L2 norm of the gradients of `vars`.
pub fn grad_norm(grads: &GradStore, vars: &[Var]) -> candle_core::Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += sum_squares(g)?;
        }
    }
    Ok(sq.sqrt())
}

/// The factor clipping scales gradients of global norm `norm` by: `max / (norm + 1e-6)`
/// when that is below 1, else 1. The optimizer can apply it as it reads each gradient
/// ([`crate::optim::adamw::AdamW::step_scaled`]), saving a pass over all of them.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Clips the gradients of `vars` in `grads` in place; returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<f64> {
    let norm = grad_norm(grads, vars)?;
    let coef = clip_scale(norm, max_norm);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let clipped: Tensor = (g * coef)?;
                grads.insert(v.as_tensor(), clipped);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn grads_of(vars: &[Var], scale: f64) -> GradStore {
        // loss = scale · Σ p²/2 → gradient scale · p.
        let mut loss = Tensor::new(0f64, &Device::Cpu).unwrap();
        for v in vars {
            let l = ((v.as_tensor().sqr().unwrap().sum_all().unwrap()) * (scale / 2.0)).unwrap();
            loss = (loss + l).unwrap();
        }
        loss.backward().unwrap()
    }

    #[test]
    fn scales_to_the_max_norm_only_when_above_it() {
        let a = Var::new(&[3.0f64, 0.0], &Device::Cpu).unwrap();
        let b = Var::new(&[0.0f64, 4.0], &Device::Cpu).unwrap();
        let vars = [a.clone(), b.clone()];
        let mut g = grads_of(&vars, 1.0);
        let norm = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let ga = g.get(a.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let gb = g.get(b.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let after = (ga[0].powi(2) + gb[1].powi(2)).sqrt();
        assert!((after - 5.0 / (5.0 + 1e-6)).abs() < 1e-9, "{after}");
        let mut g = grads_of(&vars, 0.1);
        let norm = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!((norm - 0.5).abs() < 1e-12);
        // Below the limit the gradient is untouched: exactly 0.1 · p.
        let untouched = g.get(a.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(untouched, vec![3.0 * 0.1, 0.0]);
    }
}

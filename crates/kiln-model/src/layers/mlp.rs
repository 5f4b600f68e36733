//! The SwiGLU feed-forward block (Shazeer, 2020): down(silu(gate(x)) ⊙ up(x)).

use candle_core::Tensor;

use crate::error::Result;
use crate::layers::Linear;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct SwiGluMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl SwiGluMlp {
    pub fn load(w: &Weights, hidden: usize, intermediate: usize) -> Result<Self> {
        Ok(Self {
            gate_proj: w.pp("gate_proj").linear(intermediate, hidden, false)?,
            up_proj: w.pp("up_proj").linear(intermediate, hidden, false)?,
            down_proj: w.pp("down_proj").linear(hidden, intermediate, false)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(x)?)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

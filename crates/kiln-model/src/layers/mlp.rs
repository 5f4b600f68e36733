//! Feed-forward blocks: SwiGLU (Shazeer, 2020), down(silu(gate(x)) ⊙ up(x)), and GPT-2's
//! GELU MLP, down(gelu(up(x))).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::error::Result;
use crate::layers::linear::forward_many;
use crate::layers::Linear;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct SwiGluMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl SwiGluMlp {
    pub fn new(gate_proj: Linear, up_proj: Linear, down_proj: Linear) -> Self {
        Self {
            gate_proj,
            up_proj,
            down_proj,
        }
    }

    pub fn load(w: &Weights, hidden: usize, intermediate: usize) -> Result<Self> {
        Ok(Self {
            gate_proj: w.pp("gate_proj").linear(intermediate, hidden, false)?,
            up_proj: w.pp("up_proj").linear(intermediate, hidden, false)?,
            down_proj: w.pp("down_proj").linear(hidden, intermediate, false)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut gate_up = forward_many(&[&self.gate_proj, &self.up_proj], x)?.into_iter();
        let (Some(gate), Some(up)) = (gate_up.next(), gate_up.next()) else {
            unreachable!("forward_many returns one output per layer")
        };
        let inference = !gate.track_op() && !up.track_op();
        let h = if inference && gate.dtype() == candle_core::DType::F32 && gate.device().is_cpu() {
            gate.contiguous()?
                .apply_op2_no_bwd(&up.contiguous()?, &GgmlSwiGlu)?
        } else {
            (candle_nn::ops::silu(&gate)? * up)?
        };
        self.down_proj.forward(&h)
    }
}

/// GPT-2's MLP: down(gelu(up(x))) with the exact (erf) GELU, as PyTorch's `nn.GELU()`.
#[derive(Debug, Clone)]
pub struct GeluMlp {
    up_proj: Linear,
    down_proj: Linear,
}

impl GeluMlp {
    pub fn new(up_proj: Linear, down_proj: Linear) -> Self {
        Self { up_proj, down_proj }
    }

    pub fn load(w: &Weights, hidden: usize, intermediate: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            up_proj: w.pp("up_proj").linear(intermediate, hidden, bias)?,
            down_proj: w.pp("down_proj").linear(hidden, intermediate, bias)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (Some(up), Some(down)) = (
            self.up_proj.dense_unbiased(),
            self.down_proj.dense_unbiased(),
        ) {
            if x.track_op() || up.track_op() || down.track_op() {
                return Ok(crate::kernels::train::gelu_mlp(x, up, down)?);
            }
        }
        let h = self.up_proj.forward(x)?;
        let h = if h.track_op() {
            // candle's GELU backward rounds 1/sqrt(2π) to six digits; kiln's is exact.
            crate::kernels::train::gelu(&h)?
        } else {
            h.gelu_erf()?
        };
        self.down_proj.forward(&h)
    }
}

/// The feed-forward block a model's configuration chose.
#[derive(Debug, Clone)]
pub enum Mlp {
    SwiGlu(SwiGluMlp),
    Gelu(GeluMlp),
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::SwiGlu(m) => m.forward(x),
            Mlp::Gelu(m) => m.forward(x),
        }
    }
}

/// silu(gate) ⊙ up rounded as llama.cpp rounds it (see [`crate::kernels::ggml_math`]);
/// the training path keeps candle's differentiable ops.
struct GgmlSwiGlu;

impl CustomOp2 for GgmlSwiGlu {
    fn name(&self) -> &'static str {
        "kiln-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(g), CpuStorage::F32(u)) = (gs, us) else {
            candle_core::bail!("kiln-swiglu: expected f32, got {:?}", gs.dtype())
        };
        let (Some((g0, g1)), Some((u0, u1))) = (gl.contiguous_offsets(), ul.contiguous_offsets())
        else {
            candle_core::bail!("kiln-swiglu: inputs must be contiguous")
        };
        if gl.shape() != ul.shape() {
            candle_core::bail!("kiln-swiglu: gate {:?} vs up {:?}", gl.shape(), ul.shape())
        }
        let mut y = vec![0f32; g1 - g0];
        crate::kernels::ggml_math::swiglu(&g[g0..g1], &u[u0..u1], &mut y);
        Ok((CpuStorage::F32(y), gl.shape().clone()))
    }
}

//! Training kernels: the fused forward and hand-written backward of the layers a small
//! model's training step spends its time in (linear layers, LayerNorm, RMSNorm, exact GELU,
//! causal attention, cross-entropy), as candle custom ops. Candle's composed versions make a graph
//! node and a fresh tensor per elementary op, forward and backward; at a small GPT's shapes
//! that overhead, not the arithmetic, was most of a step. Generic over f32 (training) and
//! f64 (the finite-difference gradient checks run through this same code).

mod attention;
mod cross_entropy;
mod gelu;
mod gelu_mlp;
mod linear;
mod norm;
mod quant_linear;
mod real;
mod strided;

use candle_core::{Result, Tensor};

pub use attention::{CausalAttentionOp, PackedCausalAttentionOp};
pub use real::erf_f32;

/// x (…, in) · W (out, in)ᵀ → (…, out), differentiable in both.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, linear::LinearOp)
}

/// x (…, in) · W (out, in)ᵀ for a frozen quantized W, differentiable in x only.
pub fn frozen_quant_linear(
    x: &Tensor,
    w: &std::sync::Arc<crate::kernels::QuantMatrix>,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op1(quant_linear::FrozenQuantLinearOp(w.clone()))
}

/// (x - mean) / sqrt(var + eps) · g + b over the last axis, differentiable.
pub fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(g, b, norm::LayerNormOp { eps })
}

/// x / sqrt(mean(x²) + eps) · g over the last axis, differentiable.
pub fn rms_norm(x: &Tensor, g: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(g, norm::RmsNormOp { eps })
}

/// GPT-2's MLP, gelu(x·Uᵀ)·Dᵀ for x (…, d), up U (f, d) and down D (d, f), as one
/// differentiable node.
pub fn gelu_mlp(x: &Tensor, up: &Tensor, down: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &up.contiguous()?,
        &down.contiguous()?,
        gelu_mlp::GeluMlpOp::default(),
    )
}

/// The exact (erf) GELU, differentiable.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(gelu::GeluOp)
}

/// Causal self-attention over token-major q (b, t, n_head · d) and k, v (b, t, n_kv · d),
/// giving (b, t, n_head · d); differentiable.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_head: usize,
    n_kv: usize,
) -> Result<Tensor> {
    let head_dim = q.dim(2)? / n_head.max(1);
    let op = CausalAttentionOp {
        n_head,
        n_kv,
        head_dim,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// [`causal_attention`] over q, k and v packed in one (b, t, (n_head + 2·n_kv) · d)
/// tensor, the output of one product with the three weights stacked.
pub fn causal_attention_packed(qkv: &Tensor, n_head: usize, n_kv: usize) -> Result<Tensor> {
    let head_dim = qkv.dim(2)? / (n_head + 2 * n_kv).max(1);
    let op = CausalAttentionOp {
        n_head,
        n_kv,
        head_dim,
    };
    qkv.contiguous()?.apply_op1(PackedCausalAttentionOp(op))
}

/// Mean cross-entropy of (n, vocab) logits against n target ids (u32), a scalar;
/// differentiable in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, cross_entropy::CrossEntropyOp)
}

#[cfg(test)]
mod testing {
    use candle_core::{Tensor, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f64>())
            .expect("comparable f64 tensors")
    }

    /// `ours` and `theirs` (f64) agree in value and, reduced with weights `r`, in the
    /// gradient of every one of `vars`, to 1e-10.
    pub fn assert_same_value_and_grads(ours: &Tensor, theirs: &Tensor, r: &Tensor, vars: &[&Var]) {
        let d = max_diff(ours, theirs);
        assert!(d < 1e-10, "values differ by {d:e}");
        let grads = |t: &Tensor| (t * r).unwrap().sum_all().unwrap().backward().unwrap();
        let (go, gt) = (grads(ours), grads(theirs));
        for (i, v) in vars.iter().enumerate() {
            let d = max_diff(
                go.get(v.as_tensor()).unwrap(),
                gt.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-10, "gradient of input {i} differs by {d:e}");
        }
    }
}

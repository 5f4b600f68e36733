//! Activation checkpointing by block. Autograd keeps every intermediate of a forward pass
//! until backward; for SmolLM2 at 4 × 512 tokens that is several gigabytes. Here the
//! forward keeps only each block's input (one (b, t, hidden) tensor per block), and the
//! backward runs block by block from the top: recompute the block from its saved input,
//! backpropagate the gradient arriving at its output, keep the adapter's gradients and the
//! gradient at its input for the block below. One block's graph is alive at a time, for
//! the price of a second forward pass.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use kiln_model::CausalLM;

use crate::error::Result;

/// Adds `micro`'s gradients of `vars` (only those: a backward's store also holds every
/// intermediate's gradient, which must not outlive it) into `total`.
pub fn accumulate(total: &mut GradStore, micro: &GradStore, vars: &[Var]) -> Result<()> {
    for v in vars {
        if let Some(g) = micro.get(v.as_tensor()) {
            let sum = match total.get(v.as_tensor()) {
                Some(a) => (a + g)?,
                None => g.clone(),
            };
            total.insert(v.as_tensor(), sum);
        }
    }
    Ok(())
}

/// A block's input as a leaf of its own graph: block i's gradient stops there, and is
/// read off it for block i - 1.
fn leaf(x: &Tensor) -> Result<Var> {
    Ok(Var::from_tensor(&x.detach())?)
}

/// Block `i` of the forward pass; the first block's input (the frozen embeddings) needs no
/// gradient, the others are leaves so forward and recompute take the same kernels.
fn run_block(model: &dyn CausalLM, i: usize, input: &Tensor) -> Result<(Tensor, Option<Var>)> {
    if i == 0 {
        return Ok((model.block(0, input)?, None));
    }
    let v = leaf(input)?;
    Ok((model.block(i, v.as_tensor())?, Some(v)))
}

/// The hidden states after the last block (before the final norm), with no graph kept:
/// evaluation at training sizes without training's memory.
pub fn final_hidden(model: &dyn CausalLM, ids: &Tensor) -> Result<Tensor> {
    let mut x = model.embed(ids)?.detach();
    for i in 0..model.num_blocks() {
        x = run_block(model, i, &x)?.0.detach();
    }
    Ok(x)
}

/// `head(h)` on the last block's output h (a scalar loss), and the gradients of `vars`,
/// by checkpointed backward.
pub fn loss_and_grads(
    model: &dyn CausalLM,
    ids: &Tensor,
    vars: &[Var],
    head: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, GradStore)> {
    let n = model.num_blocks();
    let mut inputs = Vec::with_capacity(n);
    let mut x = model.embed(ids)?.detach();
    for i in 0..n {
        let out = run_block(model, i, &x)?.0.detach();
        inputs.push(std::mem::replace(&mut x, out));
    }
    let top = leaf(&x)?;
    let loss = head(top.as_tensor())?;
    let grads = loss.backward()?;
    let mut d_out = grads.get(top.as_tensor()).cloned();
    let mut total = GradStore::default();
    accumulate(&mut total, &grads, vars)?;
    drop(grads);
    for i in (0..n).rev() {
        let Some(dy) = d_out.take() else {
            break; // nothing below the head depends on the adapter
        };
        let (out, input) = run_block(model, i, &inputs[i])?;
        // d(Σ out ⊙ dy)/d(out) = dy: backward of this block alone, seeded with dy.
        let g = (out * dy)?.sum_all()?.backward()?;
        d_out = input.and_then(|v| g.get(v.as_tensor()).cloned());
        accumulate(&mut total, &g, vars)?;
    }
    Ok((loss.detach(), total))
}

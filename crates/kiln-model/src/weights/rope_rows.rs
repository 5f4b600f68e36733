//! The two row orders of a Llama's Q/K projections. Hugging Face's RoPE rotates the halves
//! of each head (i with i + d/2); llama.cpp's converter permutes each head's rows so that
//! RoPE rotates adjacent pairs (2i with 2i + 1), and kiln runs a GGUF in that order
//! (`RopeStyle::Interleaved`). Anything written for a Hugging Face loader from such a base
//! (merged weights, a PEFT adapter's lora_B) goes back to HF's order, and comes in from it.

use candle_core::Tensor;

use crate::config::{ModelConfig, RopeStyle};
use crate::error::Result;

/// The number of heads whose rows `weight` holds when it is a Q or K projection of a base
/// that runs interleaved RoPE, else `None` (nothing to reorder).
pub fn reordered_heads(cfg: &ModelConfig, weight: &str) -> Option<usize> {
    if cfg.rope.style != RopeStyle::Interleaved {
        return None;
    }
    if weight.ends_with("self_attn.q_proj.weight") {
        Some(cfg.num_heads)
    } else if weight.ends_with("self_attn.k_proj.weight") {
        Some(cfg.num_kv_heads)
    } else {
        None
    }
}

/// Rows of each head from pair order (row 2i + j) to halves order (row j·d/2 + i).
pub fn interleaved_to_halves(w: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    Ok(w.reshape((heads, head_dim / 2, 2, cols))?
        .transpose(1, 2)?
        .reshape((rows, cols))?)
}

/// The inverse of [`interleaved_to_halves`].
pub fn halves_to_interleaved(w: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    Ok(w.reshape((heads, 2, head_dim / 2, cols))?
        .transpose(1, 2)?
        .reshape((rows, cols))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn orders_match_the_two_rope_pairings_and_invert() {
        let (heads, d, cols) = (2, 6, 3);
        let w = Tensor::arange(0f32, (heads * d * cols) as f32, &Device::Cpu)
            .unwrap()
            .reshape((heads * d, cols))
            .unwrap();
        let halves = interleaved_to_halves(&w, heads, d).unwrap();
        let rows: Vec<Vec<f32>> = w.to_vec2().unwrap();
        let got: Vec<Vec<f32>> = halves.to_vec2().unwrap();
        for h in 0..heads {
            for i in 0..d / 2 {
                for j in 0..2 {
                    // The pair (2i, 2i+1) of the interleaved order is (i, i + d/2) in halves.
                    assert_eq!(got[h * d + j * d / 2 + i], rows[h * d + 2 * i + j]);
                }
            }
        }
        let back = halves_to_interleaved(&halves, heads, d).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), rows);
    }
}

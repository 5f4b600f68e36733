//! Training FLOPs per token, for the progress bar's achieved FLOP/s and the scaling sweep's
//! compute axis.
//!
//! Convention (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Table 1):
//! a forward pass costs `2·N + 2·n_layer·n_ctx·d_model` FLOPs per token and a training step
//! three times that (backward = 2 × forward), so
//!
//! ```text
//! C_token = 6·N + 6·n_layer·n_ctx·d_model
//! ```
//!
//! `N` counts the parameters that take part in a matrix multiply: everything except the
//! embedding tables (a lookup is not a multiply), plus the LM head, which multiplies by a
//! `vocab × d_model` matrix whether or not it shares its storage with the token embedding.
//! The attention term is the QKᵀ and AV products: PaLM (Chowdhery et al. 2022, App. B)
//! writes `12·n_layer·d_model·n_ctx` for them without a causal mask; with the mask each
//! token attends to (n_ctx + 1)/2 positions on average, which halves it to Kaplan's `6·…`.
//! Norms, softmax, activations and the optimizer are left out, as in both papers.

use kiln_model::config::{ModelConfig, PositionKind};
use kiln_model::params::parameter_count;

use crate::data::manifest::Manifest;
use crate::error::Result;
use crate::training::pretrain::config::TrainConfig;

/// Parameters that take part in a matrix multiply per token (see the module docs): all
/// parameters less the embedding tables, plus the LM head counted even when tied.
pub fn matmul_params(cfg: &ModelConfig) -> u64 {
    let (v, d) = (cfg.vocab_size as u64, cfg.hidden_size as u64);
    let mut n = parameter_count(cfg) as u64;
    n -= v * d; // token embedding table
    if cfg.kinds.position == PositionKind::Learned {
        n -= cfg.max_position_embeddings as u64 * d; // learned position table
    }
    // A tied head shares the token table just subtracted, so its multiply is added back;
    // an untied `lm_head.weight` is still in the count.
    if cfg.tie_word_embeddings {
        n += v * d;
    }
    n
}

/// Training FLOPs per token (forward + backward) of a model trained on windows of
/// `cfg.max_position_embeddings` tokens: `6·N + 6·n_layer·n_ctx·d_model`.
pub fn flops_per_token(cfg: &ModelConfig) -> f64 {
    let attention = cfg.num_layers as f64
        * cfg.max_position_embeddings as f64
        * (cfg.num_heads * cfg.head_dim) as f64;
    6.0 * matmul_params(cfg) as f64 + 6.0 * attention
}

/// The model a run config builds, with the vocabulary of its prepared data directory.
pub fn run_model_config(cfg: &TrainConfig) -> Result<ModelConfig> {
    let manifest = Manifest::load(&cfg.data.dir).map_err(|e| cfg.missing_data(e))?;
    Ok(cfg.model_config(manifest.vocab_size as usize))
}

/// Tokens one optimizer step consumes: accumulation × batch × context.
pub fn tokens_per_step(cfg: &TrainConfig) -> u64 {
    (cfg.train.grad_accum * cfg.train.batch_size * cfg.model.context) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(tied: bool, norm: &str, position: &str, mlp: &str) -> ModelConfig {
        let text = format!(
            "[model]\nn_layer = 4\nn_head = 4\nd_model = 128\ncontext = 64\n\
             tied_embeddings = {tied}\nnorm = \"{norm}\"\nposition = \"{position}\"\n\
             mlp = \"{mlp}\"\n\
             [data]\ndir = \"d\"\n[train]\nsteps = 1\nbatch_size = 1\nlr = 1e-3\nmin_lr = 0.0\n"
        );
        TrainConfig::parse(&text).unwrap().model_config(65)
    }

    /// nanoGPT's shakespeare-char model, counted by hand: per layer 4·d² (q, k, v, o) +
    /// 2·d·4d (up, down) + 2·2d (two LayerNorms with bias); final LayerNorm 2d; head V·d.
    #[test]
    fn counts_the_gpt2_model_by_hand() {
        let (d, l, v, t) = (128u64, 4u64, 65u64, 64u64);
        let per_layer = 4 * d * d + 8 * d * d + 4 * d;
        let n = l * per_layer + 2 * d + v * d;
        let c = cfg(true, "layernorm", "learned", "gelu");
        assert_eq!(matmul_params(&c), n);
        assert_eq!(flops_per_token(&c), (6 * n + 6 * l * t * d) as f64);
        // Untied: the head is its own matrix but costs the same multiply.
        assert_eq!(
            matmul_params(&cfg(false, "layernorm", "learned", "gelu")),
            n
        );
    }

    #[test]
    fn rope_and_swiglu() {
        let (d, l, v) = (128u64, 4u64, 65u64);
        // RMSNorm has no bias (d per norm); SwiGLU has three d×4d matrices; no position table.
        let per_layer = 4 * d * d + 12 * d * d + 2 * d;
        let n = l * per_layer + d + v * d;
        let c = cfg(true, "rmsnorm", "rope", "swiglu");
        assert_eq!(matmul_params(&c), n);
        assert_eq!(
            matmul_params(&ModelConfig {
                tie_word_embeddings: false,
                ..c
            }),
            n
        );
    }
}

//! The parameters a [`ModelConfig`] implies, by Hugging Face name, with their shapes and how
//! a fresh model initialises them (GPT-2's scheme: N(0, 0.02) for matrices and embeddings,
//! the two projections into the residual stream scaled by 1/√(2·layers), norms at 1 and
//! biases at 0). Training and the tiny demo model both build from this one list.

use crate::config::{MlpKind, ModelConfig, NormKind, PositionKind};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal(f32),
    Ones,
    Zeros,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    /// Weight decay applies (matrices); not to norms, biases or embeddings.
    pub decay: bool,
}

pub fn parameter_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (h, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (
        cfg.num_heads * cfg.head_dim,
        cfg.num_kv_heads * cfg.head_dim,
    );
    let residual_std = 0.02 / (2.0 * cfg.num_layers as f32).sqrt();
    let mut out = vec![];
    let mut add = |name: String, shape: Vec<usize>, init: Init, decay: bool| {
        out.push(ParamSpec {
            name,
            shape,
            init,
            decay,
        })
    };
    let matrix = Init::Normal(0.02);
    let norm = |add: &mut dyn FnMut(String, Vec<usize>, Init, bool), name: String| {
        add(format!("{name}.weight"), vec![h], Init::Ones, false);
        if cfg.kinds.norm == NormKind::LayerNorm {
            add(format!("{name}.bias"), vec![h], Init::Zeros, false);
        }
    };
    add(
        "model.embed_tokens.weight".into(),
        vec![v, h],
        matrix,
        false,
    );
    if cfg.kinds.position == PositionKind::Learned {
        let p = cfg.max_position_embeddings;
        add(
            "model.embed_positions.weight".into(),
            vec![p, h],
            matrix,
            false,
        );
    }
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        norm(&mut add, format!("{p}.input_layernorm"));
        for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            add(
                format!("{p}.self_attn.{proj}.weight"),
                vec![rows, h],
                matrix,
                true,
            );
            if cfg.attention_bias {
                add(
                    format!("{p}.self_attn.{proj}.bias"),
                    vec![rows],
                    Init::Zeros,
                    false,
                );
            }
        }
        let o = format!("{p}.self_attn.o_proj.weight");
        add(o, vec![h, q], Init::Normal(residual_std), true);
        norm(&mut add, format!("{p}.post_attention_layernorm"));
        if cfg.kinds.mlp == MlpKind::SwiGlu {
            add(
                format!("{p}.mlp.gate_proj.weight"),
                vec![f, h],
                matrix,
                true,
            );
        }
        add(format!("{p}.mlp.up_proj.weight"), vec![f, h], matrix, true);
        let down = format!("{p}.mlp.down_proj.weight");
        add(down, vec![h, f], Init::Normal(residual_std), true);
    }
    norm(&mut add, "model.norm".into());
    if !cfg.tie_word_embeddings {
        add("lm_head.weight".into(), vec![v, h], matrix, true);
    }
    out
}

/// The number of parameters (a tied head counted once).
pub fn parameter_count(cfg: &ModelConfig) -> usize {
    parameter_specs(cfg)
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

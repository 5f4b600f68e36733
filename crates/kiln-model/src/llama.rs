//! The Llama-family decoder (Touvron et al., 2023), covering Llama 2/3, SmolLM2, Mistral and
//! Qwen2: pre-norm blocks of RMSNorm → GQA attention with RoPE → residual, RMSNorm →
//! SwiGLU MLP → residual; a final RMSNorm and an LM head (tied to the embedding or not).

use candle_core::{Device, Tensor};

use crate::causal_lm::{Batch, CausalLM, ForwardContext, LogitsMode};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::layers::{Attention, Embedding, Linear, RmsNorm, RotaryEmbedding, SwiGluMlp};
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: SwiGluMlp,
}

impl Block {
    fn load(w: &Weights, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            input_layernorm: w.pp("input_layernorm").rms_norm(h, cfg.rms_norm_eps)?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            post_attention_layernorm: w
                .pp("post_attention_layernorm")
                .rms_norm(h, cfg.rms_norm_eps)?,
            mlp: SwiGluMlp::load(&w.pp("mlp"), h, cfg.intermediate_size)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &RotaryEmbedding,
        start: usize,
        cache: Option<&mut crate::kv_cache::LayerKvCache>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let x = (x + self.self_attn.forward(&h, rope, start, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        Ok((&x + self.mlp.forward(&h)?)?)
    }
}

#[derive(Debug, Clone)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: RotaryEmbedding,
    config: ModelConfig,
    device: Device,
}

impl Llama {
    /// Builds the model from weights named as in Hugging Face checkpoints
    /// (`model.layers.0.self_attn.q_proj.weight`, ...); loaders translate other namings.
    pub fn load(w: &Weights, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let device = w.device().clone();
        let embed_tokens = w
            .pp("model.embed_tokens")
            .embedding(cfg.vocab_size, cfg.hidden_size)?;
        let layers = (0..cfg.num_layers)
            .map(|i| Block::load(&w.pp(format!("model.layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm = w
            .pp("model.norm")
            .rms_norm(cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings || !w.contains("lm_head.weight") {
            Linear::new(embed_tokens.weight().clone(), None)?
        } else {
            w.pp("lm_head")
                .linear(cfg.vocab_size, cfg.hidden_size, false)?
        };
        let rope = RotaryEmbedding::new(
            &cfg.rope,
            cfg.head_dim,
            cfg.max_position_embeddings,
            &device,
        )?;
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            config: cfg.clone(),
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn embed_tokens(&self) -> &Embedding {
        &self.embed_tokens
    }

    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }
}

impl CausalLM for Llama {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn forward(&self, batch: &Batch, ctx: &mut ForwardContext<'_>) -> Result<Tensor> {
        let (_, t) = batch.input_ids.dims2()?;
        let start = batch.start_pos;
        if let Some(cache) = ctx.cache.as_deref() {
            if cache.len() != start {
                return Err(ModelError::Op {
                    op: "forward",
                    msg: format!(
                        "batch starts at position {start} but the cache holds {}",
                        cache.len()
                    ),
                });
            }
        }
        if start + t > self.rope.max_positions() {
            return Err(ModelError::ContextOverflow {
                prompt: start + t,
                generate: 0,
                context: self.rope.max_positions(),
            });
        }
        let mut x = self.embed_tokens.forward(&batch.input_ids)?; // (b, t, hidden)
        for (i, block) in self.layers.iter().enumerate() {
            let cache = ctx.cache.as_deref_mut().map(|c| c.layer_mut(i));
            x = block.forward(&x, &self.rope, start, cache)?;
        }
        let x = match batch.logits {
            LogitsMode::Last => x.narrow(1, t - 1, 1)?.squeeze(1)?, // (b, hidden)
            LogitsMode::All => x,
        };
        let x = self.norm.forward(&x)?;
        self.lm_head.forward(&x)
    }
}

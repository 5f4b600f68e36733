//! The Llama-family decoder (Touvron et al., 2023), covering Llama 2/3, SmolLM2, Mistral and
//! Qwen2: pre-norm blocks of RMSNorm → GQA attention with RoPE → residual, RMSNorm →
//! SwiGLU MLP → residual; a final RMSNorm and an LM head (tied to the embedding or not).
//!
//! The same decoder with GPT-2's parts switched in ([`crate::config::BlockKinds`]: LayerNorm,
//! learned positions added to the token embeddings, a GELU MLP) is what training ablations
//! compare against; those weights are named like Llama's plus `model.embed_positions`.

use candle_core::{Device, Tensor};

use crate::causal_lm::{Batch, CausalLM, ForwardContext, LayerCache, LogitsMode, PagedStep};
use crate::config::{MlpKind, ModelConfig, PositionKind};
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::layers::{Attention, Embedding, GeluMlp, Linear, Mlp, Norm, RotaryEmbedding, SwiGluMlp};
use crate::paged_kv::SeqLogits;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct Block {
    input_layernorm: Norm,
    self_attn: Attention,
    post_attention_layernorm: Norm,
    mlp: Mlp,
}

impl Block {
    fn load(w: &Weights, cfg: &ModelConfig) -> Result<Self> {
        let (h, f, eps, norm) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.rms_norm_eps,
            cfg.kinds.norm,
        );
        let m = w.pp("mlp");
        Ok(Self {
            input_layernorm: w.pp("input_layernorm").norm(norm, h, eps)?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            post_attention_layernorm: w.pp("post_attention_layernorm").norm(norm, h, eps)?,
            mlp: match cfg.kinds.mlp {
                MlpKind::SwiGlu => Mlp::SwiGlu(SwiGluMlp::load(&m, h, f)?),
                MlpKind::Gelu => Mlp::Gelu(GeluMlp::load(&m, h, f, false)?),
            },
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: Option<&RotaryEmbedding>,
        start: usize,
        cache: LayerCache<'_>,
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
    /// Learned absolute positions (GPT-2), when the configuration asks for them.
    embed_positions: Option<Embedding>,
    layers: Vec<Block>,
    norm: Norm,
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
        let embed_positions = match cfg.kinds.position {
            PositionKind::Learned => Some(
                w.pp("model.embed_positions")
                    .embedding(cfg.max_position_embeddings, cfg.hidden_size)?,
            ),
            PositionKind::Rope => None,
        };
        let norm = w
            .pp("model.norm")
            .norm(cfg.kinds.norm, cfg.hidden_size, cfg.rms_norm_eps)?;
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
            embed_positions,
            layers,
            norm,
            lm_head,
            rope,
            config: cfg.clone(),
            device,
        })
    }
}

impl CausalLM for Llama {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn forward(&self, batch: &Batch, ctx: &mut ForwardContext<'_>) -> Result<Tensor> {
        let cache = match ctx {
            ForwardContext::Paged(step) => return self.forward_paged(batch, step),
            ForwardContext::Contiguous(cache) => Some(&mut **cache),
            ForwardContext::Training => None,
        };
        let (_, t) = batch.input_ids.dims2()?;
        let x = self.decoder(batch, cache)?;
        let x = match batch.logits {
            LogitsMode::Last => x.narrow(1, t - 1, 1)?.squeeze(1)?, // (b, hidden)
            LogitsMode::All => x,
        };
        let x = self.norm.forward(&x)?;
        self.lm_head.forward(&x)
    }

    fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        Ok(self.embed_at(input_ids, 0)?.0)
    }

    fn num_blocks(&self) -> usize {
        self.layers.len()
    }

    fn block(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        let rope = self.embed_positions.is_none().then_some(&self.rope);
        let block = self.layers.get(i).ok_or_else(|| ModelError::Op {
            op: "block",
            msg: format!("block {i} of {}", self.layers.len()),
        })?;
        block.forward(x, rope, 0, LayerCache::None)
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(x)
    }

    fn logits(&self, h: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(h)
    }
}

impl Llama {
    /// Token embeddings (b, t, hidden) of ids at positions `start..`, plus the learned
    /// positions when the model has them (else the RoPE the blocks apply).
    fn embed_at(
        &self,
        input_ids: &Tensor,
        start: usize,
    ) -> Result<(Tensor, Option<&RotaryEmbedding>)> {
        let (_, t) = input_ids.dims2()?;
        let x = self.embed_tokens.forward(input_ids)?;
        Ok(match &self.embed_positions {
            Some(table) => {
                let pos =
                    Tensor::arange(start as u32, (start + t) as u32, x.device())?.unsqueeze(0)?;
                (x.broadcast_add(&table.forward(&pos)?)?, None)
            }
            None => (x, Some(&self.rope)),
        })
    }

    /// Embeddings through every block: (b, t, hidden) before the final norm.
    fn decoder(&self, batch: &Batch, mut cache: Option<&mut KvCache>) -> Result<Tensor> {
        let (_, t) = batch.input_ids.dims2()?;
        let start = batch.start_pos;
        if let Some(cache) = cache.as_deref() {
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
        let (mut x, rope) = self.embed_at(&batch.input_ids, start)?;
        for (i, block) in self.layers.iter().enumerate() {
            let cache = match cache.as_deref_mut() {
                Some(c) => LayerCache::Contiguous(c.layer_mut(i)),
                None => LayerCache::None,
            };
            x = block.forward(&x, rope, start, cache)?;
        }
        Ok(x)
    }

    /// The engine's step: several sequences' new tokens in one (1, T) row, each sequence
    /// at its own positions with its own blocks; logits only for the rows asked for.
    fn forward_paged(&self, batch: &Batch, step: &mut PagedStep<'_>) -> Result<Tensor> {
        let (b, t) = batch.input_ids.dims2()?;
        let seqs = step.seqs;
        let total: usize = seqs.iter().map(|s| s.len).sum();
        if b != 1 || t != total || seqs.iter().any(|s| s.len == 0) {
            return Err(ModelError::Op {
                op: "paged forward",
                msg: format!(
                    "expected one row of {total} tokens (sequences of {:?} new tokens, none empty), got ({b}, {t})",
                    seqs.iter().map(|s| s.len).collect::<Vec<_>>()
                ),
            });
        }
        if let Some(s) = seqs
            .iter()
            .find(|s| s.start_pos + s.len > self.rope.max_positions())
        {
            return Err(ModelError::ContextOverflow {
                prompt: s.start_pos + s.len,
                generate: 0,
                context: self.rope.max_positions(),
            });
        }
        let mut x = self.embed_tokens.forward(&batch.input_ids)?; // (1, T, hidden)
        let rope = match &self.embed_positions {
            Some(table) => {
                let pos: Vec<u32> = seqs
                    .iter()
                    .flat_map(|s| s.start_pos as u32..(s.start_pos + s.len) as u32)
                    .collect();
                let pos = Tensor::from_vec(pos, (1, t), x.device())?;
                x = (x + table.forward(&pos)?)?;
                None
            }
            None => Some(&self.rope),
        };
        for (i, block) in self.layers.iter().enumerate() {
            let layer = step.cache.layer_mut(i);
            x = block.forward(&x, rope, 0, LayerCache::Paged { layer, seqs })?;
        }
        let mut rows = Vec::new();
        let mut offset = 0u32;
        for s in seqs {
            let len = s.len as u32;
            match s.logits {
                SeqLogits::None => {}
                SeqLogits::Last => rows.push(offset + len - 1),
                SeqLogits::Tail(n) => rows.extend(offset + len - (n as u32).min(len)..offset + len),
            }
            offset += len;
        }
        if rows.is_empty() {
            let vocab = self.config.vocab_size;
            return Ok(Tensor::zeros(
                (0, vocab),
                candle_core::DType::F32,
                x.device(),
            )?);
        }
        let rows = Tensor::from_vec(rows.clone(), rows.len(), x.device())?;
        let x = x.squeeze(0)?.index_select(&rows, 0)?; // (rows, hidden)
        let x = self.norm.forward(&x)?;
        self.lm_head.forward(&x)
    }
}

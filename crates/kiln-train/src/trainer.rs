//! The training loop: seeded initialisation, random windows from the train shard, gradient
//! accumulation, global-norm clipping, AdamW on the warmup-cosine schedule, fixed-batch
//! train/val evaluation, `metrics.jsonl`, and checkpoints that `resume` continues bit for
//! bit. The run directory doubles as a Hugging Face model directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`) that kiln's own loader reads back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use kiln_model::atomic::{write_atomic_via, write_bytes_atomic};
use kiln_model::config::ModelConfig;
use kiln_model::weights::vars::{Param, VarWeights};
use kiln_model::weights::Weights;
use kiln_model::{Batch as ModelBatch, CausalLM, ForwardContext, LogitsMode};
use serde::Serialize;

use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, CheckpointState};
use crate::clip::{clip_scale, grad_norm};
use crate::error::{Result, TrainError};
use crate::loader::{Batch, TokenDataset};
use crate::plot;
use crate::rng::DataRng;
use crate::schedule::CosineSchedule;
use crate::train_config::TrainConfig;

/// Seed offset for the fixed evaluation windows, so they differ from the training draw.
const EVAL_SEED: u64 = 0x5eed_e7a1;

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// Stop after this many steps in total (the schedule still follows the config).
    pub stop_at: Option<u64>,
    /// Checked after every step: once set (by a Ctrl-C handler, say), the step just
    /// completed is checkpointed, the run directory exported and `train` returns with
    /// `interrupted` set, so `resume` continues from exactly there.
    pub stop: Option<Arc<AtomicBool>>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// A loop's own figures (DPO's rewards, margins and accuracy), as `name: value`.
    #[serde(flatten, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub steps: u64,
    pub final_loss: f64,
    pub val_loss: Option<f64>,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
    /// Stopped early through `TrainOptions::stop`; `steps` is the last step checkpointed.
    pub interrupted: bool,
}

/// Mean next-token cross-entropy of a batch.
fn batch_loss(model: &dyn CausalLM, b: &Batch, dev: &Device) -> Result<Tensor> {
    let (inputs, targets) = b.to_tensors(dev)?;
    let batch = ModelBatch {
        input_ids: inputs,
        start_pos: 0,
        logits: LogitsMode::All,
    };
    let logits = model.forward(&batch, &mut ForwardContext::training())?;
    let v = model.config().vocab_size;
    let logits = logits.reshape((b.batch * b.ctx, v))?;
    Ok(kiln_model::kernels::train::cross_entropy(
        &logits,
        &targets.flatten_all()?,
    )?)
}

fn mean_loss(model: &dyn CausalLM, batches: &[Batch], dev: &Device) -> Result<f64> {
    let mut sum = 0.0;
    for b in batches {
        sum += batch_loss(model, b, dev)?.to_scalar::<f32>()? as f64;
    }
    Ok(sum / batches.len().max(1) as f64)
}

/// Trains as `cfg` says into `opts.out`, calling `on_step` after every step.
pub fn train(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<TrainReport> {
    let dev = Device::Cpu;
    let (m, t) = (&cfg.model, &cfg.train);
    let data = TokenDataset::open(&cfg.data.dir)?;
    let model_cfg: ModelConfig = cfg.model_config(data.manifest.vocab_size as usize);
    let (source, params) = VarWeights::init(&model_cfg, t.seed, DType::F32, &dev)?;
    let model = kiln_model::loader::build_model(&Weights::new(source), &model_cfg)?;
    let mut opt = AdamW::new(AdamWConfig {
        beta1: t.beta1,
        beta2: t.beta2,
        eps: 1e-8,
        weight_decay: t.weight_decay,
    });
    for p in &params {
        opt.add(p.name.clone(), p.var.clone(), p.decay)?;
    }
    let sched = CosineSchedule {
        max_lr: t.lr,
        min_lr: t.min_lr,
        warmup_steps: t.warmup,
        decay_steps: t.decay_steps.unwrap_or(t.steps),
    };
    let mut rng = DataRng::seed_from_u64(t.seed);
    let run = &opts.out;
    std::fs::create_dir_all(run).map_err(|e| TrainError::io(run, "create", e))?;
    let mut start = 0;
    if opts.resume {
        let (_, state) = checkpoint::load_latest(run, &model_cfg, &params, &mut opt)?;
        rng.restore(state.rng)?;
        start = state.step;
    }
    let eval_val =
        data.val
            .eval_batches(t.eval_batches, t.batch_size, m.context, t.seed ^ EVAL_SEED)?;
    let eval_train =
        data.train
            .eval_batches(t.eval_batches, t.batch_size, m.context, t.seed ^ EVAL_SEED)?;
    let metrics_path = run.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, start)?;
    let end = opts.stop_at.unwrap_or(t.steps).min(t.steps);
    let vars: Vec<_> = params.iter().map(|p| p.var.clone()).collect();
    let (mut last_loss, mut last_val, mut tok_s) = (f64::NAN, None, 0.0);
    let (mut timed_tokens, mut timed_secs) = (0usize, 0f64);
    let loss_png = run.join("loss.png");
    let title = format!(
        "Training loss: {}",
        run.file_name().unwrap_or(run.as_os_str()).to_string_lossy()
    );
    let (mut last_step, mut interrupted) = (start, false);
    for step in start..end {
        let t0 = Instant::now();
        let lr = sched.lr(step);
        let mut total: Option<Tensor> = None;
        for _ in 0..t.grad_accum {
            let b = data.train.sample_batch(&mut rng, t.batch_size, m.context)?;
            let l = (batch_loss(&*model, &b, &dev)? / t.grad_accum as f64)?;
            total = Some(match total {
                Some(s) => (s + l)?,
                None => l,
            });
        }
        let Some(total) = total else {
            return Err(TrainError::InvalidArgument(
                "[train] grad_accum must be >= 1".into(),
            ));
        };
        let grads = total.backward()?;
        let grad_norm = grad_norm(&grads, &vars)?;
        opt.step_scaled(&grads, lr, clip_scale(grad_norm, t.grad_clip))?;
        last_loss = total.to_scalar::<f32>()? as f64;
        let secs = t0.elapsed().as_secs_f64();
        let tokens = t.grad_accum * t.batch_size * m.context;
        timed_tokens += tokens;
        timed_secs += secs;
        tok_s = tokens as f64 / secs;
        let done = step + 1;
        let mut line = StepMetrics {
            step: done,
            loss: last_loss,
            lr,
            grad_norm,
            tokens_per_s: tok_s,
            train_loss: None,
            val_loss: None,
            extra: Default::default(),
        };
        if done % t.eval_every == 0 || done == t.steps {
            line.train_loss = Some(mean_loss(&*model, &eval_train, &dev)?);
            line.val_loss = Some(mean_loss(&*model, &eval_val, &dev)?);
            last_val = line.val_loss;
        }
        let json =
            serde_json::to_string(&line).map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
        writeln!(metrics, "{json}").map_err(|e| TrainError::io(&metrics_path, "write", e))?;
        on_step(&line);
        last_step = done;
        interrupted = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        if done % t.checkpoint_every == 0 || done == end || interrupted {
            metrics
                .flush()
                .map_err(|e| TrainError::io(&metrics_path, "write", e))?;
            let state = CheckpointState {
                step: done,
                rng: rng.state(),
                model: model_cfg.clone(),
                extra: serde_json::Value::Null,
            };
            checkpoint::save(run, &params, &opt, &state, t.keep)?;
        }
        // After the checkpoint, so a failed plot write never costs the step's checkpoint;
        // redrawn from the file (not memory) so a resumed run's plot has the whole curve.
        if line.val_loss.is_some() && done != end && !interrupted {
            plot::plot_loss(&plot::read_loss_points(&metrics_path)?, &title, &loss_png)?;
        }
        if interrupted {
            break;
        }
    }
    export(run, &model_cfg, &params, &data.dir)?;
    plot::plot_loss(&plot::read_loss_points(&metrics_path)?, &title, &loss_png)?;
    Ok(TrainReport {
        steps: if interrupted { last_step } else { end },
        final_loss: last_loss,
        val_loss: last_val,
        tokens_per_s: if timed_secs > 0.0 {
            timed_tokens as f64 / timed_secs
        } else {
            tok_s
        },
        run_dir: run.clone(),
        interrupted,
    })
}

/// `metrics.jsonl` positioned to continue after `start` steps: lines of later steps (from
/// a run that went past its last checkpoint) are dropped so the curve has no duplicates.
pub(crate) fn open_metrics(path: &Path, start: u64) -> Result<std::fs::File> {
    let kept: String = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= start)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // Atomically: a crash here must not lose the curve the checkpoint stands for.
    write_bytes_atomic(path, kept.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, "open", e))
}

/// The run directory as a model directory: `config.json` (a Llama config, plus `kiln_kinds`
/// for other switches), `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`. With
/// Llama's parts it is a standard Hugging Face Llama directory: `config.json` carries every
/// field transformers' `LlamaConfig` would otherwise default differently (`head_dim`,
/// `rms_norm_eps`, the biases, token ids), so `LlamaForCausalLM.from_pretrained` rebuilds
/// exactly the model kiln trained.
fn export(run: &Path, cfg: &ModelConfig, params: &[Param], data_dir: &Path) -> Result<()> {
    let tok_path = data_dir.join("tokenizer.json");
    let tok = std::fs::read(&tok_path).map_err(|e| TrainError::io(&tok_path, "read", e))?;
    // GPT-2's convention: the end-of-text token is both BOS and EOS, so generation stops
    // there. A tokenizer without special tokens (characters) has neither.
    let special = end_of_text_token(&tok);
    let special_id = special.as_ref().map(|(_, id)| *id);
    let mut config = cfg.to_hf_json();
    config["bos_token_id"] = special_id.into();
    config["eos_token_id"] = special_id.into();
    let text = serde_json::to_vec_pretty(&config)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    write_bytes_atomic(&run.join("config.json"), &text)?;
    let weights: std::collections::HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    write_atomic_via(&run.join("model.safetensors"), |tmp| {
        candle_core::safetensors::save(&weights, tmp).map_err(std::io::Error::other)
    })?;
    write_bytes_atomic(&run.join("tokenizer.json"), &tok)?;
    // For transformers' AutoTokenizer (the fast tokenizer reads tokenizer.json as is) and
    // kiln's loader (which takes EOS from here too). No chat template: a pretrained run is a
    // base model.
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some((name, _)) = special {
        tc["bos_token"] = name.clone().into();
        tc["eos_token"] = name.into();
    }
    let text =
        serde_json::to_vec_pretty(&tc).map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    write_bytes_atomic(&run.join("tokenizer_config.json"), &text)?;
    Ok(())
}

/// The tokenizer's end-of-text token and id: `<|endoftext|>` when it has one, else its first
/// special token, else `None`.
fn end_of_text_token(tokenizer_json: &[u8]) -> Option<(String, u32)> {
    let v: serde_json::Value = serde_json::from_slice(tokenizer_json).ok()?;
    let special: Vec<(String, u32)> = v["added_tokens"]
        .as_array()?
        .iter()
        .filter(|t| t["special"].as_bool() == Some(true))
        .filter_map(|t| Some((t["content"].as_str()?.to_string(), t["id"].as_u64()? as u32)))
        .collect();
    special
        .iter()
        .find(|(name, _)| name == crate::ENDOFTEXT)
        .or(special.first())
        .cloned()
}

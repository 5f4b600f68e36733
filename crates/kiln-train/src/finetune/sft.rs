//! `kiln finetune sft`: supervised fine-tuning of a frozen base through a LoRA adapter.
//! On a GGUF base the base stays quantized and only the adapter's factors train (QLoRA).
//! The run directory holds the adapter in PEFT's layout (`adapter_config.json`,
//! `adapter_model.safetensors`, rewritten at every checkpoint), `metrics.jsonl`, `loss.png`,
//! `data_report.json` and `checkpoints/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};
use kiln_model::lora::{save_adapter, LoraSet};
use kiln_model::weights::vars::Param;
use kiln_model::{loader, Llama};
use serde::Serialize;

use super::checkpointed::accumulate;
use super::config::FinetuneConfig;
use super::loss::{sft_loss, sft_loss_and_grads};
use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, CheckpointState};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::plot;
use crate::rng::DataRng;
use crate::schedule::CosineSchedule;
use crate::sft_data::{
    eval_batches, prepare_examples, read_sft_jsonl, Batching, DataPosition, DataReport,
    SamplerConfig, SftBatch, SftSampler, SftTokenizer, TokenizedExample,
};
use crate::trainer::{open_metrics, StepMetrics};

#[derive(Debug, Clone, Default)]
pub struct FinetuneOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// Stop after this many steps in total (the schedule still follows the config).
    pub stop_at: Option<u64>,
    /// Checked after every step: once set (Ctrl-C), the step just completed is
    /// checkpointed and the loop returns with `interrupted` set.
    pub stop: Option<Arc<AtomicBool>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub steps: u64,
    pub final_loss: f64,
    pub eval_loss: Option<f64>,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
    pub interrupted: bool,
    pub train_data: DataReport,
    pub eval_data: Option<DataReport>,
}

/// The base model with fresh trainable factors attached, and those factors.
pub struct AdaptedModel {
    pub loaded: loader::LoadedModel,
    pub lora: Arc<LoraSet>,
    pub params: Vec<Param>,
}

pub fn load_adapted(cfg: &FinetuneConfig, dev: &Device) -> Result<AdaptedModel> {
    let lora_cfg = cfg.lora_config();
    let mut made = None;
    let loaded = loader::load_with_lora(&cfg.model.path, dev, |base| {
        let (set, params) = LoraSet::trainable(&lora_cfg, base, cfg.train.seed, dev)?;
        let set = Arc::new(set);
        made = Some((set.clone(), params));
        Ok(Some(set))
    })?;
    let Some((lora, params)) = made else {
        return Err(TrainError::InvalidArgument(
            "no adapter was attached".into(),
        ));
    };
    Ok(AdaptedModel {
        loaded,
        lora,
        params,
    })
}

/// A JSONL file tokenized for `model`, with the account of what `max_len` cut.
fn examples(
    path: &Path,
    cfg: &FinetuneConfig,
    model: &loader::LoadedModel,
) -> Result<(Vec<TokenizedExample>, DataReport)> {
    let records = read_sft_jsonl(path)?;
    let tok = SftTokenizer::new(
        &model.tokenizer,
        model.chat_template.as_ref(),
        cfg.data.train_on,
    );
    let (examples, report) = prepare_examples(&records, &tok, cfg.data.max_len, path)?;
    if examples.is_empty() {
        return Err(TrainError::InvalidArgument(format!(
            "{}: no example has a token to train on ({} dropped)",
            path.display(),
            report.dropped_no_trainable_tokens
        )));
    }
    Ok((examples, report))
}

/// Token-weighted mean loss over fixed batches, dropout off.
fn eval_loss(model: &Llama, batches: &[SftBatch], dev: &Device) -> Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for b in batches {
        let (loss, count) = sft_loss(model, b, dev)?;
        sum += loss * count as f64;
        n += count;
    }
    Ok(sum / n.max(1) as f64)
}

/// A dropout seed per (run seed, step, micro-batch): the same masks on a resumed run.
fn dropout_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((micro as u64) << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, text.as_bytes())
}

/// Fine-tunes as `cfg` says into `opts.out`, calling `on_step` after every step.
pub fn finetune_sft(
    cfg: &FinetuneConfig,
    opts: &FinetuneOptions,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<FinetuneReport> {
    let dev = Device::Cpu;
    let t = &cfg.train;
    let adapted = load_adapted(cfg, &dev)?;
    let (model, lora, params) = (&adapted.loaded.model, &adapted.lora, &adapted.params);
    let base_cfg = adapted.loaded.info.config.clone();
    let (train_examples, train_report) = examples(&cfg.data.train, cfg, &adapted.loaded)?;
    let eval = match &cfg.data.eval {
        Some(p) => Some(examples(p, cfg, &adapted.loaded)?),
        None => None,
    };
    let pad_id = adapted
        .loaded
        .tokenizer
        .eos_token_ids()
        .first()
        .copied()
        .unwrap_or(0);
    let eval_set = eval
        .as_ref()
        .map(|(ex, _)| eval_batches(ex, t.batch_size, pad_id));
    let mut sampler = SftSampler::new(
        train_examples,
        SamplerConfig {
            batch_size: t.batch_size,
            max_len: cfg.data.max_len,
            pad_id,
            batching: Batching::Bucketed {
                window: cfg.data.bucket_window,
            },
            seed: t.seed,
        },
    )?;
    let mut opt = AdamW::new(AdamWConfig {
        beta1: t.beta1,
        beta2: t.beta2,
        eps: 1e-8,
        weight_decay: t.weight_decay,
    });
    for p in params {
        opt.add(p.name.clone(), p.var.clone(), p.decay)?;
    }
    let sched = CosineSchedule {
        max_lr: t.lr,
        min_lr: cfg.min_lr(),
        warmup_steps: t.warmup,
        decay_steps: t.max_steps,
    };
    let run = &opts.out;
    std::fs::create_dir_all(run).map_err(|e| TrainError::io(run, "create", e))?;
    let mut start = 0;
    if opts.resume {
        let (dir, state) = checkpoint::load_latest(run, &base_cfg, params, &mut opt)?;
        let bad = |msg: String| TrainError::Checkpoint {
            path: dir.clone(),
            msg,
        };
        let saved: FinetuneConfig = serde_json::from_value(state.extra["config"].clone())
            .map_err(|e| bad(format!("has no readable fine-tuning config: {e}")))?;
        let changed = cfg.diff(&saved);
        if !changed.is_empty() {
            return Err(bad(format!(
                "was written with another config; resume with the config the run was \
                 started with, or start a new run. Changed: {}",
                changed.join("; ")
            )));
        }
        let pos: DataPosition = serde_json::from_value(state.extra["data"].clone())
            .map_err(|e| bad(format!("has no readable data position: {e}")))?;
        sampler.restore(&pos)?;
        start = state.step;
    }
    write_json(&run.join("data_report.json"), &train_report)?;
    let metrics_path = run.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, start)?;
    let end = opts.stop_at.unwrap_or(t.max_steps).min(t.max_steps);
    let vars: Vec<Var> = params.iter().map(|p| p.var.clone()).collect();
    let (mut last_loss, mut last_eval, mut tok_s) = (f64::NAN, None, 0.0);
    let (mut timed_tokens, mut timed_secs) = (0usize, 0f64);
    let loss_png = run.join("loss.png");
    let title = format!(
        "Fine-tuning loss: {}",
        run.file_name().unwrap_or(run.as_os_str()).to_string_lossy()
    );
    let (mut last_step, mut interrupted) = (start, false);
    for step in start..end {
        let t0 = Instant::now();
        let lr = sched.lr(step);
        let (mut grads, mut loss_sum, mut tokens) = (GradStore::default(), 0.0, 0usize);
        for micro in 0..t.grad_accum {
            let batch = sampler.next_batch();
            lora.set_dropout_seed(Some(dropout_seed(t.seed, step, micro)));
            let scale = 1.0 / t.grad_accum as f64;
            let (loss, g) = sft_loss_and_grads(model, &batch, &dev, &vars, scale)?;
            loss_sum += loss;
            accumulate(&mut grads, &g, &vars)?;
            tokens += batch.real_tokens();
        }
        lora.set_dropout_seed(None);
        let grad_norm = clip_grad_norm(&mut grads, &vars, t.grad_clip)?;
        opt.step(&grads, lr)?;
        last_loss = loss_sum;
        let secs = t0.elapsed().as_secs_f64();
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
        };
        if let Some(batches) = &eval_set {
            if done % t.eval_every == 0 || done == end {
                line.val_loss = Some(eval_loss(model, batches, &dev)?);
                last_eval = line.val_loss;
            }
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
            let extra = serde_json::json!({"config": cfg, "data": sampler.position()});
            let state = CheckpointState {
                step: done,
                rng: DataRng::seed_from_u64(t.seed).state(),
                model: base_cfg.clone(),
                extra,
            };
            checkpoint::save(run, params, &opt, &state, t.keep)?;
            save_adapter(run, &lora.to_adapter()?, &base_cfg)?;
        }
        if line.val_loss.is_some() && done != end && !interrupted {
            plot::plot_loss(&plot::read_loss_points(&metrics_path)?, &title, &loss_png)?;
        }
        if interrupted {
            break;
        }
    }
    save_adapter(run, &lora.to_adapter()?, &base_cfg)?;
    plot::plot_loss(&plot::read_loss_points(&metrics_path)?, &title, &loss_png)?;
    Ok(FinetuneReport {
        steps: if interrupted { last_step } else { end },
        final_loss: last_loss,
        eval_loss: last_eval,
        tokens_per_s: if timed_secs > 0.0 {
            timed_tokens as f64 / timed_secs
        } else {
            tok_s
        },
        run_dir: run.clone(),
        interrupted,
        train_data: train_report,
        eval_data: eval.map(|(_, r)| r),
    })
}

//! The fine-tuning loop every method shares: AdamW on the adapter's factors with warmup +
//! cosine, gradient accumulation, clipping, held-out evaluation, `metrics.jsonl`,
//! `loss.png`, atomic checkpoints (with the data position and the run's config, so a resume
//! continues exactly and a changed config is refused by name) and the adapter in PEFT's
//! layout, rewritten at every checkpoint. What differs between methods is the
//! [`Objective`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};
use kiln_model::lora::{load_adapter, save_adapter, LoraSet};
use kiln_model::weights::vars::Param;
use kiln_model::{loader, ModelError};
use serde::Serialize;

use super::checkpointed::accumulate;
use super::config::FinetuneConfig;
use super::objective::Objective;
use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, CheckpointState};
use crate::clip::{clip_scale, grad_norm};
use crate::error::{Result, TrainError};
use crate::plot;
use crate::rng::DataRng;
use crate::schedule::CosineSchedule;
use crate::sft_data::DataReport;
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
    /// The last evaluation's other figures.
    pub eval_extra: BTreeMap<String, f64>,
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
        let init = match &cfg.lora.init {
            Some(dir) => Some(load_adapter(dir, base, dev)?),
            None => None,
        };
        let (set, params) =
            LoraSet::trainable(&lora_cfg, base, cfg.train.seed, dev, init.as_ref())?;
        let set = Arc::new(set);
        made = Some((set.clone(), params));
        Ok::<_, ModelError>(Some(set))
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

/// A dropout seed per (run seed, step, micro-batch): the same masks on a resumed run.
fn dropout_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((micro as u64) << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// Trains `adapted`'s adapter on `objective` as `cfg` says, into `opts.out`.
pub fn run_finetune(
    cfg: &FinetuneConfig,
    opts: &FinetuneOptions,
    adapted: &AdaptedModel,
    objective: &mut dyn Objective,
    data: (DataReport, Option<DataReport>),
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<FinetuneReport> {
    let t = &cfg.train;
    let (model, lora, params) = (&adapted.loaded.model, &adapted.lora, &adapted.params);
    let base_cfg = adapted.loaded.info.config.clone();
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
        objective.restore(&state.extra["data"])?;
        start = state.step;
    }
    let report_text = serde_json::to_string_pretty(&data.0)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    kiln_model::atomic::write_bytes_atomic(&run.join("data_report.json"), report_text.as_bytes())?;
    let metrics_path = run.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, start)?;
    let end = opts.stop_at.unwrap_or(t.max_steps).min(t.max_steps);
    let vars: Vec<Var> = params.iter().map(|p| p.var.clone()).collect();
    let (mut last_loss, mut last_eval, mut tok_s) = (f64::NAN, None, 0.0);
    let mut eval_extra = BTreeMap::new();
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
        let mut extra: BTreeMap<String, f64> = BTreeMap::new();
        let scale = 1.0 / t.grad_accum as f64;
        for micro in 0..t.grad_accum {
            lora.set_dropout_seed(Some(dropout_seed(t.seed, step, micro)));
            let m = objective.micro_step(model, &vars, scale)?;
            loss_sum += m.loss;
            accumulate(&mut grads, &m.grads, &vars)?;
            tokens += m.tokens;
            for (k, v) in m.extra {
                *extra.entry(k).or_default() += v * scale;
            }
        }
        lora.set_dropout_seed(None);
        let grad_norm = grad_norm(&grads, &vars)?;
        opt.step_scaled(&grads, lr, clip_scale(grad_norm, t.grad_clip))?;
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
            extra,
        };
        // At the config's last step, not a --steps stop: a run stopped early and resumed
        // evaluates where the uninterrupted run does.
        if done % t.eval_every == 0 || done == t.max_steps {
            if let Some(e) = objective.evaluate(model)? {
                line.val_loss = Some(e.loss);
                last_eval = Some(e.loss);
                for (k, v) in &e.extra {
                    line.extra.insert(format!("eval_{k}"), *v);
                }
                eval_extra = e.extra;
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
            let extra = serde_json::json!({"config": cfg, "data": objective.position()});
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
        eval_extra,
        tokens_per_s: if timed_secs > 0.0 {
            timed_tokens as f64 / timed_secs
        } else {
            tok_s
        },
        run_dir: run.clone(),
        interrupted,
        train_data: data.0,
        eval_data: data.1,
    })
}

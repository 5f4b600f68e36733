//! The one training loop. Every run, pretraining, SFT and DPO alike, is this loop over an
//! [`Objective`] and a [`Trainable`]: lr → micro-steps (gradients summed) → clip → AdamW
//! step → log → evaluate → checkpoint → stop. Checkpoints are atomic and carry the data
//! position and the run's config, so a resume under another config is refused by name; a
//! resumed run continues the uninterrupted one bit for bit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::Var;
use serde_json::Value;

use super::checkpoint::{self, CheckpointState};
use super::finetune::checkpointed::accumulate;
use super::metrics::{MetricsLog, StepMetrics};
use super::objective::{Evaluation, MicroBatch, Objective, Position, Trainable};
use super::settings::TrainSettings;
use crate::error::{Result, TrainError};
use crate::optim::adamw::AdamW;
use crate::optim::clip::{clip_scale, grad_norm};

#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// Stop after this many steps in total (the schedule still follows the settings).
    pub stop_at: Option<u64>,
    /// Checked after every step: once set (Ctrl-C), the step just completed is
    /// checkpointed and the loop returns with `interrupted` set.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What the loop is given besides the model and the loss.
pub struct LoopRun<'a> {
    pub settings: &'a TrainSettings,
    pub options: &'a LoopOptions,
    /// The run's config, saved in every checkpoint and compared on resume.
    pub config: RunConfig,
    /// The loss plot's title.
    pub title: &'a str,
}

/// The run's config as checkpoints record it, and how to read an older kiln's.
pub struct RunConfig {
    pub now: Value,
    /// A saved config in today's form (renamed keys, defaults made explicit); `None` when
    /// there is nothing to compare (a checkpoint from before configs were saved).
    pub upgrade: fn(&Value) -> Option<Value>,
}

#[derive(Debug, Clone)]
pub struct LoopReport {
    /// Steps done (the last one checkpointed when interrupted).
    pub steps: u64,
    pub final_loss: f64,
    /// The last evaluation.
    pub eval: Option<Evaluation>,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
    pub interrupted: bool,
}

/// A dropout seed per (run seed, step, micro-batch): the same masks on a resumed run.
fn dropout_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((micro as u64) << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// Trains `trained` on `objective` as `run` says, calling `on_step` after every step.
pub fn run_loop(
    run: &LoopRun<'_>,
    trained: &dyn Trainable,
    objective: &mut dyn Objective,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<LoopReport> {
    let (t, dir) = (run.settings, &run.options.out);
    let (mut opt, start, end) = start(run, trained, objective)?;
    let mut log = MetricsLog::open(dir, start, run.title)?;
    let vars: Vec<Var> = trained.params().iter().map(|p| p.var.clone()).collect();
    let sched = t.schedule();
    let mut report = LoopReport {
        steps: start,
        final_loss: f64::NAN,
        eval: None,
        tokens_per_s: 0.0,
        run_dir: dir.clone(),
        interrupted: false,
    };
    let mut speed = Speed::default();
    for step in start..end {
        let t0 = Instant::now();
        let lr = sched.lr(step);
        let sum = micro_steps(t, trained, objective, &vars, step)?;
        let grad_norm = grad_norm(&sum.grads, &vars)?;
        opt.step_scaled(&sum.grads, lr, clip_scale(grad_norm, t.grad_clip))?;
        let done = step + 1;
        let mut line = StepMetrics {
            step: done,
            loss: sum.loss,
            lr,
            grad_norm,
            tokens_per_s: speed.add(sum.tokens, t0.elapsed().as_secs_f64()),
            train_loss: None,
            val_loss: None,
            extra: sum.extra,
        };
        // At the settings' last step, not a --stop-after stop: a run stopped early and
        // resumed evaluates where the uninterrupted run does.
        if done % t.eval_every == 0 || done == t.steps {
            if let Some(e) = objective.evaluate(trained.model())? {
                record_eval(&mut line, &e);
                report.eval = Some(e);
            }
        }
        log.write(&line)?;
        on_step(&line);
        report.final_loss = line.loss;
        report.steps = done;
        report.interrupted = run
            .options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst));
        if done % t.checkpoint_every == 0 || done == end || report.interrupted {
            log.flush()?;
            save_checkpoint(run, trained, objective, &opt, done)?;
        }
        // After the checkpoint, so a failed plot write never costs the step's checkpoint.
        if line.val_loss.is_some() && done != end && !report.interrupted {
            log.plot()?;
        }
        if report.interrupted {
            break;
        }
    }
    if !report.interrupted {
        report.steps = end;
    }
    trained.save(dir, true)?;
    log.plot()?;
    report.tokens_per_s = speed.mean();
    Ok(report)
}

/// The optimizer over the trainable's parameters, the step the run starts from (0, or the
/// newest checkpoint's with `resume`) and the step it stops after.
fn start(
    run: &LoopRun<'_>,
    trained: &dyn Trainable,
    objective: &mut dyn Objective,
) -> Result<(AdamW, u64, u64)> {
    let (t, dir) = (run.settings, &run.options.out);
    if t.grad_accum == 0 {
        return Err(TrainError::InvalidArgument(
            "[train] grad_accum must be >= 1".into(),
        ));
    }
    let mut opt = AdamW::new(t.adamw());
    for p in trained.params() {
        opt.add(p.name.clone(), p.var.clone(), p.decay)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, "create", e))?;
    let start = if run.options.resume {
        resume(run, trained, &mut opt, objective)?
    } else {
        0
    };
    let end = run.options.stop_at.unwrap_or(t.steps).min(t.steps);
    if end < start {
        return Err(TrainError::InvalidArgument(format!(
            "the newest checkpoint is at step {start}, past step {end} where this run stops \
             (check --steps and --stop-after)"
        )));
    }
    objective.on_start(dir)?;
    Ok((opt, start, end))
}

/// One step's micro-batches: their losses, gradients and figures summed.
struct StepSum {
    loss: f64,
    grads: GradStore,
    tokens: usize,
    extra: BTreeMap<String, f64>,
}

fn micro_steps(
    t: &TrainSettings,
    trained: &dyn Trainable,
    objective: &mut dyn Objective,
    vars: &[Var],
    step: u64,
) -> Result<StepSum> {
    let mut sum = StepSum {
        loss: 0.0,
        grads: GradStore::default(),
        tokens: 0,
        extra: BTreeMap::new(),
    };
    let scale = 1.0 / t.grad_accum as f64;
    for index in 0..t.grad_accum {
        trained.set_dropout_seed(Some(dropout_seed(t.seed, step, index)));
        let at = MicroBatch {
            step,
            index,
            grad_accum: t.grad_accum,
        };
        let m = objective.micro_step(trained.model(), vars, at)?;
        sum.loss += m.loss;
        accumulate(&mut sum.grads, &m.grads, vars)?;
        sum.tokens += m.tokens;
        for (k, v) in m.extra {
            *sum.extra.entry(k).or_default() += v * scale;
        }
    }
    trained.set_dropout_seed(None);
    Ok(sum)
}

/// An evaluation's figures on the step's line: the loss as `val_loss`, the others prefixed
/// `eval_`.
fn record_eval(line: &mut StepMetrics, e: &Evaluation) {
    line.val_loss = Some(e.loss);
    line.train_loss = e.train_loss;
    for (k, v) in &e.extra {
        line.extra.insert(format!("eval_{k}"), *v);
    }
}

/// Loads the newest checkpoint into the parameters, the optimizer and the objective's data
/// position; returns its step.
fn resume(
    run: &LoopRun<'_>,
    trained: &dyn Trainable,
    opt: &mut AdamW,
    objective: &mut dyn Objective,
) -> Result<u64> {
    let (dir, state) = checkpoint::load_latest(
        &run.options.out,
        trained.model_config(),
        trained.params(),
        opt,
    )?;
    if let Some(saved) = (run.config.upgrade)(&state.extra["config"]) {
        check_config(&dir, &run.config.now, &saved)?;
    }
    let data = state.extra["data"].clone();
    objective.restore(&Position {
        rng: state.rng,
        data,
    })?;
    Ok(state.step)
}

/// Refuses a resume under another config, naming every key that changed.
fn check_config(dir: &std::path::Path, now: &Value, saved: &Value) -> Result<()> {
    let bad = |msg: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        msg,
    };
    if saved.is_null() {
        return Err(bad("has no readable config of the run".into()));
    }
    let changed = config_diff(saved, now);
    if changed.is_empty() {
        return Ok(());
    }
    Err(bad(format!(
        "was written with another config; resume with the config the run was started \
         with, or start a new run. Changed: {}",
        changed.join("; ")
    )))
}

/// `[train] lr 0.0002 in the checkpoint, 0.0001 now; ...`: every key of every section that
/// differs between two configs (as JSON objects of sections; a top-level value that is not
/// a section is compared as a whole).
pub fn config_diff(then: &Value, now: &Value) -> Vec<String> {
    let sections: std::collections::BTreeSet<&String> = [then, now]
        .iter()
        .filter_map(|c| c.as_object())
        .flat_map(|m| m.keys())
        .collect();
    let mut out = vec![];
    for section in sections {
        let (a, b) = (&then[section.as_str()], &now[section.as_str()]);
        if !(a.is_object() && b.is_object()) {
            if a != b {
                out.push(format!("{section} {a} in the checkpoint, {b} now"));
            }
            continue;
        }
        let keys: std::collections::BTreeSet<&String> = a
            .as_object()
            .into_iter()
            .chain(b.as_object())
            .flat_map(|m| m.keys())
            .collect();
        for k in keys {
            if a[k.as_str()] != b[k.as_str()] {
                out.push(format!(
                    "[{section}] {k} {} in the checkpoint, {} now",
                    a[k.as_str()],
                    b[k.as_str()]
                ));
            }
        }
    }
    out
}

fn save_checkpoint(
    run: &LoopRun<'_>,
    trained: &dyn Trainable,
    objective: &dyn Objective,
    opt: &AdamW,
    done: u64,
) -> Result<()> {
    let Position { rng, data } = objective.position();
    let extra = serde_json::json!({"config": run.config.now, "data": data});
    let state = CheckpointState {
        step: done,
        rng,
        model: trained.model_config().clone(),
        extra,
    };
    let dir = &run.options.out;
    checkpoint::save(dir, trained.params(), opt, &state, run.settings.keep)?;
    trained.save(dir, false)
}

/// Tokens per second: of the last step, and over the steps timed so far.
#[derive(Default)]
struct Speed {
    tokens: usize,
    secs: f64,
    last: f64,
}

impl Speed {
    /// Adds a step; returns its tokens per second.
    fn add(&mut self, tokens: usize, secs: f64) -> f64 {
        self.tokens += tokens;
        self.secs += secs;
        self.last = tokens as f64 / secs;
        self.last
    }

    fn mean(&self) -> f64 {
        if self.secs > 0.0 {
            self.tokens as f64 / self.secs
        } else {
            self.last
        }
    }
}

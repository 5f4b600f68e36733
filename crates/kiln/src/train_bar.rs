//! The progress bar of a training run (steps, loss, tokens/s, achieved FLOP/s, ETA, and a
//! line per evaluation), shared by `kiln train` and `kiln quickstart` so both look alike.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_train::{StepMetrics, TrainConfig};

pub struct TrainBar {
    bar: ProgressBar,
    /// Training FLOPs per token (6·N + attention, see `kiln_train::training::flops`), for the
    /// achieved GFLOP/s figure; none where no such count applies (fine-tuning).
    flops_per_token: Option<f64>,
    /// Whether a step was shown yet: the first one (after a resume, step N of the run)
    /// restarts the ETA estimate so the jump from 0 does not count as speed.
    started: std::cell::Cell<bool>,
}

impl TrainBar {
    /// A bar for `total` steps of `cfg`; `hidden` draws nothing (for --json output).
    pub fn new(cfg: &TrainConfig, total: u64, hidden: bool) -> Result<Self> {
        // The real vocabulary (from the data's manifest) matters: the LM head is a large
        // share of a small model's multiplies.
        let model = kiln_train::training::flops::run_model_config(cfg)?;
        let flops = kiln_train::training::flops::flops_per_token(&model);
        Self::with_flops(total, hidden, Some(flops))
    }

    /// A bar for `total` steps, with the achieved FLOP/s shown when `flops_per_token` is known.
    pub fn with_flops(total: u64, hidden: bool, flops_per_token: Option<f64>) -> Result<Self> {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]")
                .context("progress template")?,
        );
        Ok(Self {
            bar,
            flops_per_token,
            started: std::cell::Cell::new(false),
        })
    }

    /// Call after every step (the trainer's `on_step`).
    pub fn step(&self, m: &StepMetrics) {
        self.bar.set_position(m.step);
        if !self.started.replace(true) {
            self.bar.reset_eta();
        }
        let mut msg = format!("loss {:.4} | {:.0} tok/s", m.loss, m.tokens_per_s);
        if let Some(f) = self.flops_per_token {
            msg.push_str(&format!(" | {:.2} GFLOP/s", m.tokens_per_s * f / 1e9));
        }
        if let Some(v) = m.val_loss {
            msg.push_str(&format!(" | val {v:.4}"));
            let train = m
                .train_loss
                .map_or(String::new(), |t| format!("train {t:.4}, "));
            self.bar
                .println(format!("step {}: {train}val {v:.4}", m.step));
        }
        self.bar.set_message(msg);
    }

    /// Removes the bar (the evaluation lines it printed stay).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

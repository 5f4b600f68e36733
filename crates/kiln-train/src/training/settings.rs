//! The `[train]` section: the optimisation and schedule of a run, with the same key names
//! for `kiln train` and `kiln finetune`. Where a key is left out, the stage's own default
//! applies ([`StageDefaults`]): pretraining follows nanoGPT (weight decay 0.1, β2 0.99,
//! evaluation every 250 steps over 20 fixed batches, checkpoints every 500), fine-tuning
//! follows PEFT/TRL (no weight decay, β2 0.999, evaluation and checkpoints every 50 steps,
//! over the whole eval file).
//!
//! `steps` is the length of the run, and `--steps N` means one thing everywhere: the run is
//! N steps long, with the schedule fitted to it ([`TrainSettings::fit_to`]).

use serde::{Deserialize, Serialize};

use crate::optim::adamw::AdamWConfig;
use crate::optim::schedule::CosineSchedule;

/// `[train]` as written; keys whose default depends on the stage are optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    steps: u64,
    batch_size: usize,
    #[serde(default = "one")]
    grad_accum: usize,
    lr: f64,
    min_lr: Option<f64>,
    #[serde(default)]
    warmup: u64,
    decay_steps: Option<u64>,
    weight_decay: Option<f64>,
    #[serde(default = "beta1")]
    beta1: f64,
    beta2: Option<f64>,
    #[serde(default = "grad_clip")]
    grad_clip: f64,
    eval_every: Option<u64>,
    eval_batches: Option<usize>,
    checkpoint_every: Option<u64>,
    #[serde(default = "keep")]
    keep: usize,
    #[serde(default = "seed")]
    seed: u64,
}

/// `[train]` with every default applied: what a run uses, and what a fine-tuning checkpoint
/// records to refuse a resume under another config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Optimizer steps in the run.
    pub steps: u64,
    pub batch_size: usize,
    /// Micro-batches per step, their gradients summed.
    pub grad_accum: usize,
    pub lr: f64,
    /// The cosine's floor: as given, or derived from `lr` (so it follows `lr`, and a
    /// checkpoint's config differs only in what the user changed).
    pub min_lr: MinLr,
    pub warmup: u64,
    /// Steps over which the cosine decays to `min_lr`; `steps` when absent.
    pub decay_steps: Option<u64>,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient norm clipped to this.
    pub grad_clip: f64,
    pub eval_every: u64,
    /// Fixed batches per evaluation (pretraining; fine-tuning evaluates its whole eval
    /// file and has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_batches: Option<usize>,
    pub checkpoint_every: u64,
    /// Checkpoints kept; older ones are deleted after a newer one is safely on disk.
    pub keep: usize,
    pub seed: u64,
}

/// `min_lr` as given, or derived from `lr` when the config leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MinLr {
    Given(f64),
    /// `lr / lr_over` (a division, exactly as the schedule has always computed it).
    LrOver {
        lr_over: f64,
    },
}

fn one() -> usize {
    1
}
fn beta1() -> f64 {
    0.9
}
fn grad_clip() -> f64 {
    1.0
}
fn keep() -> usize {
    2
}
fn seed() -> u64 {
    1337
}

/// What a stage assumes for the keys a config leaves out.
#[derive(Debug, Clone, Copy)]
pub struct StageDefaults {
    /// Which command's config this is, for messages.
    pub stage: &'static str,
    /// `min_lr` is `lr` divided by this; `None`: the key is required.
    pub min_lr_divisor: Option<f64>,
    pub weight_decay: f64,
    pub beta2: f64,
    pub eval_every: u64,
    /// `None`: the stage has no fixed evaluation batches and refuses the key.
    pub eval_batches: Option<usize>,
    pub checkpoint_every: u64,
}

/// `kiln train`: nanoGPT's settings.
pub const PRETRAINING: StageDefaults = StageDefaults {
    stage: "kiln train",
    min_lr_divisor: None,
    weight_decay: 0.1,
    beta2: 0.99,
    eval_every: 250,
    eval_batches: Some(20),
    checkpoint_every: 500,
};

/// `kiln finetune`: PEFT's and TRL's.
pub const FINE_TUNING: StageDefaults = StageDefaults {
    stage: "kiln finetune",
    min_lr_divisor: Some(10.0),
    weight_decay: 0.0,
    beta2: 0.999,
    eval_every: 50,
    eval_batches: None,
    checkpoint_every: 50,
};

/// Keys older kilns used, and the name they have now.
pub const RENAMED_KEYS: [(&str, &str); 1] = [("max_steps", "steps")];

impl TrainSection {
    /// The settings with `stage`'s defaults; the error names the key.
    pub fn resolve(&self, stage: &StageDefaults) -> Result<TrainSettings, String> {
        let min_lr = match (self.min_lr, stage.min_lr_divisor) {
            (Some(m), _) => MinLr::Given(m),
            (None, Some(lr_over)) => MinLr::LrOver { lr_over },
            (None, None) => return Err("missing field `min_lr`".into()),
        };
        let eval_batches = match (self.eval_batches, stage.eval_batches) {
            (Some(_), None) => {
                return Err(format!(
                    "`eval_batches` is not a {} key: it evaluates the whole [data] eval file",
                    stage.stage
                ))
            }
            (given, default) => given.or(default),
        };
        let s = TrainSettings {
            steps: self.steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            min_lr,
            warmup: self.warmup,
            decay_steps: self.decay_steps,
            weight_decay: self.weight_decay.unwrap_or(stage.weight_decay),
            beta1: self.beta1,
            beta2: self.beta2.unwrap_or(stage.beta2),
            grad_clip: self.grad_clip,
            eval_every: self.eval_every.unwrap_or(stage.eval_every),
            eval_batches,
            checkpoint_every: self.checkpoint_every.unwrap_or(stage.checkpoint_every),
            keep: self.keep,
            seed: self.seed,
        };
        s.validate()?;
        Ok(s)
    }
}

impl TrainSettings {
    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("steps", self.steps as f64),
            ("lr", self.lr),
            ("batch_size", self.batch_size as f64),
            ("grad_accum", self.grad_accum as f64),
            ("eval_every", self.eval_every as f64),
            ("checkpoint_every", self.checkpoint_every as f64),
        ];
        for (key, v) in positive {
            if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(format!("[train] {key} = {v}: must be greater than 0"));
            }
        }
        let lr_ok = self.lr > 0.0 && (0.0..=self.lr).contains(&self.min_lr()); // also rejects NaN
        if !lr_ok {
            return Err(format!(
                "[train] need 0 <= min_lr ({}) <= lr ({}) and lr > 0",
                self.min_lr(),
                self.lr
            ));
        }
        Ok(())
    }

    /// The cosine's floor.
    pub fn min_lr(&self) -> f64 {
        match self.min_lr {
            MinLr::Given(m) => m,
            MinLr::LrOver { lr_over } => self.lr / lr_over,
        }
    }

    pub fn schedule(&self) -> CosineSchedule {
        CosineSchedule {
            max_lr: self.lr,
            min_lr: self.min_lr(),
            warmup_steps: self.warmup,
            decay_steps: self.decay_steps.unwrap_or(self.steps),
        }
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            weight_decay: self.weight_decay,
        }
    }

    /// These settings for a run of `steps` steps (`--steps`): the warmup and the cosine
    /// decay scale with it, so the run sees a whole schedule rather than the start of a
    /// long one; evaluation happens at least about four times (and always at the end), and
    /// a checkpoint at least at the end.
    pub fn fit_to(&self, steps: u64) -> Result<TrainSettings, String> {
        if steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        // u128 so that scaling a large schedule cannot overflow.
        let scale = |v: u64| (v as u128 * steps as u128 / self.steps as u128) as u64;
        Ok(TrainSettings {
            steps,
            warmup: scale(self.warmup),
            decay_steps: Some(scale(self.decay_steps.unwrap_or(self.steps)).max(1)),
            eval_every: self.eval_every.min(steps.div_ceil(4)).max(1),
            checkpoint_every: self.checkpoint_every.min(steps),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> TrainSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn each_stage_fills_in_its_own_defaults() {
        let s = section("steps = 100\nbatch_size = 4\nlr = 2e-4\nmin_lr = 1e-5\n");
        let pre = s.resolve(&PRETRAINING).unwrap();
        assert_eq!((pre.weight_decay, pre.beta2), (0.1, 0.99));
        assert_eq!(
            (pre.eval_every, pre.eval_batches, pre.checkpoint_every),
            (250, Some(20), 500)
        );
        let ft = s.resolve(&FINE_TUNING).unwrap();
        assert_eq!((ft.weight_decay, ft.beta2), (0.0, 0.999));
        assert_eq!(
            (ft.eval_every, ft.eval_batches, ft.checkpoint_every),
            (50, None, 50)
        );
        assert_eq!((pre.min_lr(), ft.min_lr()), (1e-5, 1e-5));
    }

    #[test]
    fn min_lr_is_required_for_pretraining_and_a_tenth_of_lr_for_fine_tuning() {
        let s = section("steps = 10\nbatch_size = 1\nlr = 2e-4\n");
        assert!(s.resolve(&PRETRAINING).unwrap_err().contains("min_lr"));
        assert!((s.resolve(&FINE_TUNING).unwrap().min_lr() - 2e-5).abs() < 1e-15);
        let s = section("steps = 10\nbatch_size = 1\nlr = 2e-4\neval_batches = 3\n");
        let e = s.resolve(&FINE_TUNING).unwrap_err();
        assert!(
            e.contains("eval_batches") && e.contains("kiln finetune"),
            "{e}"
        );
    }

    #[test]
    fn fitting_to_fewer_steps_scales_the_schedule() {
        let s = section(
            "steps = 2000\nbatch_size = 1\nlr = 1e-3\nmin_lr = 1e-4\nwarmup = 100\ncheckpoint_every = 500\n",
        )
        .resolve(&PRETRAINING)
        .unwrap();
        let f = s.fit_to(200).unwrap();
        assert_eq!((f.steps, f.warmup, f.decay_steps), (200, 10, Some(200)));
        assert_eq!((f.eval_every, f.checkpoint_every), (50, 200));
        assert_eq!(f.schedule().lr(201), 1e-4);
        assert!(s.fit_to(0).is_err());
        assert_eq!(s.fit_to(2000).unwrap().eval_every, 250);
    }
}

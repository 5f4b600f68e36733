//! What `ablate` and `sweep` share: a list of variants of one run config, trained one after
//! another with the same seed and data into `OUT/<variant>/`, with progress reported through
//! one callback and a stop flag honoured between (and inside) runs.

pub mod ablate;
pub mod plot;
pub mod scaling_fit;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Result, TrainError};
use crate::training::pretrain::config::TrainConfig;
use crate::training::pretrain::{train, TrainOptions, TrainReport};
use crate::training::StepMetrics;

/// Where and how long the variants train.
#[derive(Debug, Clone)]
pub struct StudyOptions {
    /// Parent directory; each variant trains into `out/<name>/`.
    pub out: PathBuf,
    /// Train every variant for this many steps, with the schedule compressed to fit (see
    /// [`with_steps`]); the config's `steps` when absent.
    pub steps: Option<u64>,
    /// Ctrl-C: the running variant checkpoints and the study stops after it.
    pub stop: Option<Arc<AtomicBool>>,
    /// Where the variants train.
    pub device: candle_core::Device,
}

/// What the study is doing, for a progress display.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Variant `index` of `total` (from 0) starts training with `config`.
    Start {
        index: usize,
        total: usize,
        name: &'a str,
        config: &'a TrainConfig,
    },
    Step(&'a StepMetrics),
    Finished {
        name: &'a str,
        report: &'a TrainReport,
    },
}

/// One trained variant: the trainer's report plus the last fixed-batch train loss.
#[derive(Debug, Clone)]
pub struct VariantRun {
    pub report: TrainReport,
    pub train_eval_loss: Option<f64>,
}

/// `cfg` fitted to `steps` steps for a comparison run (`--steps`, as everywhere: the whole
/// schedule in that many steps, [`TrainSettings::fit_to`]); checkpoints only at the end
/// (or on Ctrl-C), as a study is rerun rather than resumed.
///
/// [`TrainSettings::fit_to`]: crate::training::settings::TrainSettings::fit_to
pub fn with_steps(cfg: &TrainConfig, steps: Option<u64>) -> Result<TrainConfig> {
    let mut c = cfg.clone();
    c.train = c
        .train
        .fit_to(steps.unwrap_or(cfg.train.steps))
        .map_err(TrainError::InvalidArgument)?;
    c.train.checkpoint_every = c.train.steps;
    c.train.keep = 1;
    Ok(c)
}

/// Re-parses a modified config through the same TOML validation a config file gets, so a
/// variant breaks no rule (head size, lr order, …) that a file could not break either.
pub fn revalidate(cfg: &TrainConfig, what: &str) -> Result<TrainConfig> {
    let bad = |msg: String| TrainError::InvalidArgument(format!("{what}: {msg}"));
    let text = toml::to_string(cfg).map_err(|e| bad(e.to_string()))?;
    let mut parsed = TrainConfig::parse(&text).map_err(bad)?;
    parsed.prepare_commands = cfg.prepare_commands.clone();
    Ok(parsed)
}

/// Trains `variants` (name, config) in order into `opts.out/<name>/`. Stops early, with the
/// runs finished so far and the name of the interrupted one, when the stop flag is set.
pub fn run_variants(
    variants: &[(String, TrainConfig)],
    opts: &StudyOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Vec<VariantRun>, Option<String>)> {
    let mut done = vec![];
    for (index, (name, cfg)) in variants.iter().enumerate() {
        if stopped(opts) {
            return Ok((done, Some(name.clone())));
        }
        progress(Progress::Start {
            index,
            total: variants.len(),
            name,
            config: cfg,
        });
        let run_opts = TrainOptions {
            out: opts.out.join(name),
            resume: false,
            stop_at: None,
            stop: opts.stop.clone(),
        };
        let mut train_eval_loss = None;
        let report = train(cfg, &run_opts, &opts.device, |m| {
            if m.train_loss.is_some() {
                train_eval_loss = m.train_loss;
            }
            progress(Progress::Step(m));
        })?;
        progress(Progress::Finished {
            name,
            report: &report,
        });
        if report.interrupted {
            return Ok((done, Some(name.clone())));
        }
        done.push(VariantRun {
            report,
            train_eval_loss,
        });
    }
    Ok((done, None))
}

fn stopped(opts: &StudyOptions) -> bool {
    opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
}

/// A name made safe as a single directory component.
pub fn dir_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `text` to `dir/name` atomically, returning the path.
pub fn write_output(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    kiln_model::atomic::write_bytes_atomic(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_steps_compresses_the_schedule() {
        let text =
            "[model]\nn_layer = 1\nn_head = 1\nd_model = 8\ncontext = 4\n[data]\ndir = \"d\"\n\
                    [train]\nsteps = 2000\nbatch_size = 1\nlr = 1e-3\nmin_lr = 1e-4\nwarmup = 100\n\
                    eval_every = 250\n";
        let cfg = TrainConfig::parse(text).unwrap();
        let c = with_steps(&cfg, Some(200)).unwrap();
        assert_eq!(c.train.steps, 200);
        assert_eq!(c.train.warmup, 10);
        assert_eq!(c.train.decay_steps, Some(200));
        assert_eq!(c.train.eval_every, 50);
        assert_eq!(c.train.checkpoint_every, 200);
        assert_eq!(with_steps(&cfg, None).unwrap().train.eval_every, 250);
        assert!(with_steps(&cfg, Some(0)).is_err());
        assert_eq!(revalidate(&c, "x").unwrap(), c);
    }
}

//! `kiln train`: train a model from a TOML config on shards from `kiln data prepare`;
//! `kiln train ablate` and `kiln train sweep` train several variants of one config.

mod ablate;
mod interrupt;
mod sweep;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use kiln_train::study::Progress;
use kiln_train::TrainConfig;

pub use interrupt::stop_flag;

use crate::common::{device, print_json, RunArgs};
use crate::train_bar::TrainBar;

/// Train a GPT from scratch (or continue a run with --resume).
///
/// The config has three sections: [model] (n_layer, n_head, n_kv_head, d_model, ffn,
/// context, norm = rmsnorm|layernorm, position = rope|learned, mlp = swiglu|gelu,
/// tied_embeddings), [data] (dir: a `kiln data prepare` output, relative to the config) and
/// [train] (steps, batch_size, grad_accum, lr, min_lr, warmup, decay_steps, weight_decay,
/// beta1, beta2, grad_clip, eval_every, eval_batches, checkpoint_every, keep, seed). See
/// presets/ for complete examples.
///
/// --steps N trains for N steps with the config's whole schedule fitted to them (warmup,
/// decay and evaluations scaled, as everywhere in kiln); --stop-after N stops at step N of
/// the config's run, with a checkpoint that --resume continues.
///
/// OUT receives metrics.jsonl (one line per step), loss.png (the loss curve, redrawn at
/// every evaluation), checkpoints/step-NNNNNN/ (parameters, optimizer moments, data RNG;
/// written atomically, the newest `keep` kept) and, at the end, config.json +
/// model.safetensors + tokenizer.json, which `kiln generate`, `kiln perplexity` and
/// `kiln chat` load. --resume continues from the newest checkpoint and reproduces the
/// uninterrupted run's losses exactly. Ctrl-C finishes the current step, writes a
/// checkpoint and exits (continue with --resume); a second Ctrl-C exits at once.
///
/// The progress bar shows the loss, tokens/s, achieved GFLOP/s (FLOPs per token =
/// 6·N + 6·n_layer·context·d_model, N = parameters in matrix multiplies) and the ETA.
///
/// Subcommands: `kiln train ablate` (compare switches such as norm or position at the same
/// seed and data) and `kiln train sweep` (several model sizes and a fitted scaling law).
#[derive(ClapArgs, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// The run's TOML config.
    // An Option only so that `kiln train ablate …` parses without it; clap still requires it
    // for a plain `kiln train`.
    #[arg(long, short = 'c', required = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    Ablate(ablate::Args),
    Sweep(sweep::Args),
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Some(Sub::Ablate(a)) => ablate::run(a),
        Some(Sub::Sweep(a)) => sweep::run(a),
        None => train(a.config.context("--config is required")?, a.run),
    }
}

/// Where a study (ablate, sweep) writes, with Ctrl-C wired to stop it cleanly.
fn study_options(
    config: &Path,
    out: Option<PathBuf>,
    suffix: &str,
    steps: Option<u64>,
) -> Result<kiln_train::study::StudyOptions> {
    Ok(kiln_train::study::StudyOptions {
        out: out.unwrap_or_else(|| crate::common::default_out(config, suffix)),
        steps,
        stop: Some(stop_flag()?),
        device: device(),
    })
}

fn train(config: PathBuf, a: RunArgs) -> Result<()> {
    let mut cfg = TrainConfig::load(&config)?;
    a.fit(&mut cfg.train)?;
    let out = a.out_for(&config, "");
    let bar = TrainBar::new(&cfg, a.last_step(cfg.train.steps), a.json)?;
    let report = kiln_train::train(&cfg, &a.options(&out)?, &device(), |m| bar.step(m));
    bar.finish();
    let report = report?;
    if a.json {
        print_json(&report)?;
    } else if report.interrupted {
        println!(
            "interrupted at step {}; checkpoint written, continue with --resume \
             (kiln train --config {} --out {}{} --resume)",
            report.steps,
            config.display(),
            out.display(),
            a.steps.map_or(String::new(), |n| format!(" --steps {n}"))
        );
    } else {
        println!(
            "{} steps, loss {:.4}, val {}, {:.0} tokens/s; model in {}, loss curve in {}",
            report.steps,
            report.final_loss,
            report.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            report.tokens_per_s,
            out.display(),
            out.join("loss.png").display()
        );
    }
    Ok(())
}

/// Progress for `ablate` and `sweep`: a heading line and a training bar per variant, and a
/// result line when it finishes (all on stderr, so stdout holds only the table or JSON).
fn study_progress(quiet: bool) -> impl FnMut(Progress<'_>) {
    let mut bar: Option<TrainBar> = None;
    move |p| match p {
        Progress::Start {
            index,
            total,
            name,
            config,
        } => {
            if !quiet {
                eprintln!("[{}/{total}] {name}", index + 1);
            }
            // The bar only displays: if it cannot be sized (an unreadable data manifest),
            // training fails right after with that error, so no bar is better than a
            // second report of it.
            bar = TrainBar::new(config, config.train.steps, quiet).ok();
        }
        Progress::Step(m) => {
            if let Some(b) = &bar {
                b.step(m);
            }
        }
        Progress::Finished { name, report } => {
            if let Some(b) = bar.take() {
                b.finish();
            }
            if !quiet {
                eprintln!(
                    "      {name}: {} steps, val loss {}, {:.0} tokens/s{}",
                    report.steps,
                    report.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
                    report.tokens_per_s,
                    if report.interrupted {
                        " (interrupted; checkpoint written)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

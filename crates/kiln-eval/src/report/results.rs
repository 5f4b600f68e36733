//! The run directory: `results.json` (per task and metric, with standard errors and
//! intervals, accuracies as fractions), `samples_<task>.jsonl` per task, `report.md` and
//! `report.html`.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::report::html_report::{html_report, LabelledRun};
use crate::run::runner::TaskResult;
use kiln_stats::Summary;

pub const RESULTS_FILE: &str = "results.json";

pub fn samples_path(dir: &Path, task: &str) -> std::path::PathBuf {
    dir.join(format!("samples_{task}.jsonl"))
}

fn metric(m: &mut Map<String, Value>, name: &str, s: &Summary) {
    m.insert(name.into(), json!(s.mean));
    m.insert(format!("{name}_stderr"), json!(s.stderr));
    m.insert(format!("{name}_ci"), json!(s.ci));
}

/// `{"tasks": {name: {"acc", "acc_stderr", "acc_ci", "acc_norm", ..., "n"}}, "model",
/// "config", "kiln_version"}`.
pub fn results_json(results: &[TaskResult], model: Value, config: Value) -> Value {
    let mut tasks = Map::new();
    for r in results {
        let mut m = Map::new();
        for (name, summary) in &r.metrics {
            metric(&mut m, name, summary);
        }
        m.insert("n".into(), json!(r.n));
        m.insert("num_fewshot".into(), json!(r.num_fewshot));
        m.insert("source".into(), json!(r.source));
        m.insert("seconds".into(), json!(r.seconds));
        m.insert("items_per_second".into(), json!(r.items_per_second()));
        tasks.insert(r.name.clone(), Value::Object(m));
    }
    json!({
        "tasks": tasks,
        "model": model,
        "config": config,
        "kiln_version": env!("CARGO_PKG_VERSION"),
    })
}

/// The metrics a task's entry in results.json reports (the rest are their stderr, CI and
/// the run's bookkeeping).
pub const METRIC_NAMES: [&str; 13] = [
    "acc",
    "acc_norm",
    "exact_match",
    "f1",
    "bleu",
    "rouge_l",
    "pass@1",
    "pass@10",
    "pass@100",
    "token_perplexity",
    "word_perplexity",
    "byte_perplexity",
    "bits_per_byte",
];

/// Whether a metric is a fraction (shown in percent), not a perplexity or bits per byte.
pub fn is_fraction(metric: &str) -> bool {
    !metric.ends_with("perplexity") && metric != "bits_per_byte"
}

/// A markdown table of the run: one row per task and metric.
pub fn report_markdown(results: &Value) -> String {
    let mut s = String::from("# kiln eval\n\n");
    s.push_str(&format!("Model: `{}`\n\n", results["model"]));
    s.push_str("| task | n | shots | metric | value | 95% CI |\n");
    s.push_str("|---|---:|---:|---|---:|---|\n");
    if let Some(tasks) = results["tasks"].as_object() {
        for (name, t) in tasks {
            for m in METRIC_NAMES {
                let Some(v) = t[m].as_f64() else { continue };
                let (scale, digits) = if is_fraction(m) { (100.0, 1) } else { (1.0, 3) };
                let ci = t[format!("{m}_ci")]
                    .as_array()
                    .and_then(|a| {
                        Some(format!(
                            "{:.digits$}–{:.digits$}",
                            scale * a.first()?.as_f64()?,
                            scale * a.get(1)?.as_f64()?
                        ))
                    })
                    .unwrap_or_else(|| "-".into());
                s.push_str(&format!(
                    "| {name} | {} | {} | {m} | {:.digits$} | {ci} |\n",
                    t["n"],
                    t["num_fewshot"],
                    scale * v
                ));
            }
        }
    }
    s.push_str(
        "\nFractions in percent (perplexities and bits per byte as they are); intervals are \
         95% percentile bootstraps over questions (documents).\n",
    );
    s
}

/// Writes `results.json`, `report.md` and `report.html` into `dir`, each atomically.
pub fn write_results(dir: &Path, results: &Value) -> Result<()> {
    write_atomic(
        &dir.join(RESULTS_FILE),
        serde_json::to_string_pretty(results)?.as_bytes(),
    )?;
    write_atomic(&dir.join("report.md"), report_markdown(results).as_bytes())?;
    let label = results["model"]["path"]
        .as_str()
        .or_else(|| results["model"]["model"].as_str())
        .unwrap_or("run")
        .to_string();
    let page = html_report(&[LabelledRun {
        label,
        results: results.clone(),
    }]);
    write_atomic(&dir.join("report.html"), page.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(kiln_model::atomic::write_bytes_atomic(path, bytes)?)
}

//! `metrics.jsonl`: one line per optimizer step, appended as the run goes, and the loss
//! curve `loss.png` redrawn from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_model::atomic::write_bytes_atomic;
use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::study::plot;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// A loop's own figures (DPO's rewards, margins and accuracy), as `name: value`.
    #[serde(flatten, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// The run's `metrics.jsonl`, open for appending, and its plot.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
    plot: PathBuf,
    title: String,
}

impl MetricsLog {
    /// `run/metrics.jsonl` positioned to continue after `start` steps: lines of later steps
    /// (from a run that went past its last checkpoint) are dropped so the curve has no
    /// duplicates. `title` heads the plot, followed by the run directory's name.
    pub fn open(run: &Path, start: u64, title: &str) -> Result<Self> {
        let path = run.join("metrics.jsonl");
        let kept: String = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= start)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        // Atomically: a crash here must not lose the curve the checkpoint stands for.
        write_bytes_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, "open", e))?;
        let name = run.file_name().unwrap_or(run.as_os_str()).to_string_lossy();
        Ok(Self {
            title: format!("{title}: {name}"),
            plot: run.join("loss.png"),
            path,
            file,
        })
    }

    pub fn write(&mut self, line: &StepMetrics) -> Result<()> {
        let json =
            serde_json::to_string(line).map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
        writeln!(self.file, "{json}").map_err(|e| TrainError::io(&self.path, "write", e))
    }

    /// Makes the lines so far durable (before a checkpoint that stands for them).
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| TrainError::io(&self.path, "write", e))
    }

    /// Redraws `loss.png` from the file (not memory), so a resumed run's plot has the whole
    /// curve.
    pub fn plot(&self) -> Result<()> {
        plot::plot_loss(
            &plot::read_loss_points(&self.path)?,
            &self.title,
            &self.plot,
        )
    }
}

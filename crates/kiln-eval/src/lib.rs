//! kiln's evaluator: multiple-choice tasks scored by log-likelihood (OLMES request files or
//! kiln's JSONL format), generation and code tasks, perplexity and an LLM judge, through any
//! kiln-lm language model (kiln's engine on a local model, or an OpenAI-compatible
//! endpoint); accuracy and length-normalised accuracy with standard errors and bootstrap
//! intervals; a run directory with results, per-sample lines and a report.

pub mod error;
pub mod report;
pub mod run;
pub mod scoring;
pub mod tasks;

/// The judge's prompts and verdicts are kiln-lm's (retrieval's answer judging uses them too).
pub use kiln_lm::judge;
pub use kiln_lm::{EndpointLm, EndpointOptions, EngineLm, GenParams, LanguageModel, LoglikScore};
pub use kiln_stats::{paired_difference, summarize, Summary};

pub use error::{EvalError, Result};
pub use report::{results_json, samples_path, write_results, RESULTS_FILE};
pub use run::{
    run_code_task, run_gen_task, run_rolling_task, run_task, CodeSampling, RunOptions, Sample,
    TaskResult, TaskRun,
};
pub use scoring::metrics::{GenResult, ItemResult};
pub use tasks::gen_item::GenItem;
pub use tasks::mc_item::{LoglikRequest, McItem};
pub use tasks::{available_tasks, load_task, Task, TaskItems};

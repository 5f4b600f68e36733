//! kiln's evaluator: multiple-choice tasks scored by log-likelihood (OLMES request files or
//! kiln's JSONL format), generation and code tasks, perplexity and an LLM judge, through any
//! kiln-lm language model (kiln's engine on a local model, or an OpenAI-compatible
//! endpoint); accuracy and length-normalised accuracy with standard errors and bootstrap
//! intervals; a run directory with results, per-sample lines and a report.

pub mod answer;
pub mod code_exec;
pub mod code_item;
pub mod code_result;
pub mod code_tasks;
pub mod compare;
pub mod error;
pub mod gen_item;
pub mod gen_jsonl;
pub mod html_report;
pub mod item;
pub mod jsonl_task;
pub mod judge_run;
pub mod metrics;
pub mod mmlu;
pub mod olmes;
pub mod overlap;
pub mod results;
pub mod rolling;
pub mod runner;
pub mod sandbox;
pub mod task;

/// The judge's prompts and verdicts are kiln-lm's (retrieval's answer judging uses them too).
pub use kiln_lm::judge;
pub use kiln_lm::{EndpointLm, EndpointOptions, EngineLm, GenParams, LanguageModel, LoglikScore};
pub use kiln_stats::{paired_difference, summarize, Summary};

pub use error::{EvalError, Result};
pub use gen_item::GenItem;
pub use item::{LoglikRequest, McItem};
pub use metrics::{GenResult, ItemResult};
pub use results::{results_json, samples_path, write_results, RESULTS_FILE};
pub use runner::{
    run_code_task, run_gen_task, run_rolling_task, run_task, CodeSampling, RunOptions, Sample,
    TaskResult, TaskRun,
};
pub use task::{available_tasks, load_task, Task, TaskItems};

//! Running tasks through a language model: the shared loop (threads, per-sample file,
//! resume), one function per task kind, the LLM judge's runs, greedy evaluation of prompt
//! tasks with its intervals, and preference pairs from a model's own samples.

pub mod judge_run;
pub mod prefs;
pub mod prompt_eval;
pub mod runner;

pub use prefs::{build_prefs, cap_repeated_pairs, PrefPair, PrefsOptions, PrefsReport};
pub use prompt_eval::{evaluate_task, paired_bootstrap, ScoredCompletion, TaskEval};
pub use runner::{
    run_code_task, run_gen_task, run_rolling_task, run_task, CodeSampling, RunOptions, Sample,
    TaskResult, TaskRun,
};

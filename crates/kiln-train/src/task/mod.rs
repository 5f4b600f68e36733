//! Prompt tasks with checkable answers: JSONL items `{"prompt", "answer"}`, scorers that
//! grade a completion, greedy evaluation with a confidence interval (`kiln finetune eval`),
//! and synthetic preference pairs, best against worst of several samples
//! (`kiln data prefs`).

mod evaluate;
mod items;
mod pairs;
mod scorer;

pub use evaluate::{evaluate_task, paired_bootstrap, wilson_interval, ItemResult, TaskEval};
pub use items::{read_task_items, TaskItem};
pub use pairs::{build_prefs, cap_repeated_pairs, PrefPair, PrefsOptions, PrefsReport};
pub use scorer::{
    check_answers, normalize_answer, ContainsAnswer, ExactAnswer, FinalNumber, RegexScorer, Scorer,
};

//! How an answer is graded: multiple-choice and generation outcomes (accuracy, exact match,
//! F1, BLEU, ROUGE-L), answer extraction, code run against its tests in a sandbox, and the
//! [`Scorer`]s of prompt tasks (exact, contains, number, regex, an LLM judge).

pub mod answer;
pub mod code_exec;
pub mod code_result;
pub mod judge_scorer;
pub mod metrics;
pub mod overlap;
pub mod sandbox;
pub mod scorer;

pub use judge_scorer::JudgeScorer;
pub use scorer::{
    check_answers, normalize_answer, ContainsAnswer, ExactAnswer, FinalNumber, RegexScorer, Scorer,
};

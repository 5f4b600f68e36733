//! An LLM judge as a prompt-task scorer: the judge model rates each completion 1-10 with
//! the single-answer grading prompt (the item's reference answer shown when it has one),
//! scored (rating - 1) / 9. Any kiln-lm model can judge: an OpenAI-compatible endpoint
//! (`--judge-url`) or a local one.

use kiln_lm::judge::{parse_rating, single_prompt, DEFAULT_RUBRIC};
use kiln_lm::{user, GenParams, LanguageModel, TextCompletion};

use super::scorer::Scorer;
use crate::error::{EvalError, Result};
use crate::tasks::prompt_items::TaskItem;

/// Tokens the judge may write: a short explanation, then "Rating: [[n]]".
const JUDGE_MAX_TOKENS: usize = 256;

pub struct JudgeScorer {
    judge: Box<dyn LanguageModel>,
}

impl JudgeScorer {
    pub fn new(judge: Box<dyn LanguageModel>) -> Self {
        Self { judge }
    }
}

impl Scorer for JudgeScorer {
    fn name(&self) -> &str {
        "judge"
    }

    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64> {
        let question: Vec<&str> = item.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = single_prompt(
            DEFAULT_RUBRIC,
            &question.join("\n"),
            completion,
            item.answer.as_deref(),
        );
        let reply = self
            .judge
            .chat_text(&user(&prompt), &GenParams::greedy(JUDGE_MAX_TOKENS))
            .map_err(|e| EvalError::Task(format!("judge: {e}")))?;
        let rating = parse_rating(&reply).ok_or_else(|| {
            EvalError::Task(format!(
                "line {}: the judge replied {reply:?}, not a rating from 1 to 10",
                item.line
            ))
        })?;
        Ok(f64::from(rating - 1) / 9.0)
    }

    fn needs_answer(&self) -> bool {
        false
    }
}

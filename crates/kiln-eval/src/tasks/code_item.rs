//! A programming problem: a prompt the model completes, and the program that tests the
//! completion (the prompt's code, the completion, the task's tests), in Python or Rust.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Rust,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeItem {
    pub doc_id: usize,
    pub native_id: serde_json::Value,
    pub language: Language,
    /// What the model continues.
    pub prompt: String,
    pub stop: Vec<String>,
    pub max_tokens: usize,
    /// Code before the completion in the tested program (HumanEval: the function's
    /// signature and docstring, which is also the prompt; MBPP: nothing).
    pub program_prefix: String,
    /// Code after it: the task's tests and the call that runs them.
    pub tests: String,
    /// A known-correct completion (the task's canonical solution).
    pub reference: Option<String>,
}

impl CodeItem {
    /// The program that passes (exits 0) exactly when `completion` solves the problem.
    pub fn program(&self, completion: &str) -> String {
        let mut body = format!("{}{}", self.program_prefix, completion);
        if self.language == Language::Rust {
            // Completions stop at the end of the function ("\n}" is a stop sequence), so
            // the braces the model opened and did not close are closed here.
            let open = body.matches('{').count();
            let close = body.matches('}').count();
            for _ in close..open {
                body.push_str("\n}");
            }
        }
        format!("{body}\n\n{}\n", self.tests)
    }
}

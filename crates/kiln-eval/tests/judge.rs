//! The LLM judge with scripted judges: a judge that always prefers the first position is
//! cancelled into ties by asking both orders, a consistent judge keeps its verdicts, and
//! agreement with labels is counted.

use kiln_eval::judge::{Preference, DEFAULT_RUBRIC};
use kiln_eval::run::judge_run::{read_judge_file, run_judge, JudgeFile, JudgeOptions, Label};
use kiln_eval::RunOptions;
use kiln_lm::{Completion, FinishReason, GenParams, LanguageModel};
use kiln_model::ChatMessage;

/// A scripted judge: `reply(prompt)` to the one user message it is asked.
struct Scripted<F: Fn(&str) -> String + Send + Sync>(F);

impl<F: Fn(&str) -> String + Send + Sync> LanguageModel for Scripted<F> {
    fn describe(&self) -> serde_json::Value {
        "scripted".into()
    }
    fn chat(&self, messages: &[ChatMessage], _: &GenParams) -> kiln_lm::Result<Vec<Completion>> {
        assert_eq!(messages.len(), 1, "the judge asks one user message");
        Ok(vec![Completion {
            text: (self.0)(&messages[0].content),
            finish_reason: FinishReason::Stop,
            tokens: 0,
        }])
    }
}

fn section<'a>(prompt: &'a str, name: &str) -> &'a str {
    let start = prompt.find(name).unwrap() + name.len() + 1;
    let rest = &prompt[start..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].trim()
}

fn write(dir: &std::path::Path, lines: &[serde_json::Value]) -> std::path::PathBuf {
    let p = dir.join("items.jsonl");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();
    p
}

fn judge(
    file: &JudgeFile,
    backend: &dyn LanguageModel,
    dir: &std::path::Path,
) -> (
    kiln_eval::TaskRun<kiln_eval::run::judge_run::Judgment>,
    Option<kiln_eval::run::judge_run::Agreement>,
) {
    run_judge(
        backend,
        file,
        &dir.join("judgments.jsonl"),
        &RunOptions {
            limit: None,
            concurrency: 3,
            resume: false,
        },
        &JudgeOptions {
            rubric: DEFAULT_RUBRIC.into(),
            max_tokens: 64,
        },
        &|_, _| {},
    )
    .unwrap()
}

/// Pairs where the longer answer is the labelled winner, in both positions.
fn pairs() -> Vec<serde_json::Value> {
    (0..10)
        .map(|i| {
            let (short, long) = (format!("x{i}"), format!("a much longer answer {i}"));
            if i % 2 == 0 {
                serde_json::json!({"id": i, "question": "q?", "answer_a": long, "answer_b": short, "label": "a"})
            } else {
                serde_json::json!({"id": i, "question": "q?", "answer_a": short, "answer_b": long, "label": "b"})
            }
        })
        .collect()
}

#[test]
fn a_judge_that_always_picks_the_first_answer_gives_only_ties() {
    let dir = tempfile::tempdir().unwrap();
    let file = read_judge_file(&write(dir.path(), &pairs())).unwrap();
    let (run, agreement) = judge(
        &file,
        &Scripted(|_: &str| "A is better. [[A]]".into()),
        dir.path(),
    );
    assert!(run
        .samples
        .iter()
        .all(|j| j.preference == Some(Preference::Tie)));
    assert_eq!(run.summary.metric("win_rate_a").unwrap().mean, 0.5);
    assert_eq!(run.summary.metric("consistent").unwrap().mean, 0.0);
    assert_eq!(agreement.unwrap().exact.mean, 0.0);
}

#[test]
fn a_consistent_judge_agrees_with_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let file = read_judge_file(&write(dir.path(), &pairs())).unwrap();
    let longer = Scripted(|p: &str| {
        let (a, b) = (section(p, "[Response A]"), section(p, "[Response B]"));
        if a.len() > b.len() { "[[A]]" } else { "[[B]]" }.to_string()
    });
    let (run, agreement) = judge(&file, &longer, dir.path());
    assert_eq!(run.summary.metric("consistent").unwrap().mean, 1.0);
    assert_eq!(run.summary.metric("win_rate_a").unwrap().mean, 0.5);
    let ag = agreement.unwrap();
    assert_eq!((ag.labelled, ag.exact.mean), (10, 1.0));
    // The verdict is stored in the original labels for both orders.
    assert_eq!(
        run.samples[0].orders,
        vec![Some(Preference::A), Some(Preference::A)]
    );
}

#[test]
fn single_answer_ratings_and_their_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            let right = i % 2 == 0;
            serde_json::json!({
                "id": i, "question": "What is 2+2?", "reference": "4",
                "answer": if right { "It is 4." } else { "It is 5." },
                "label": if right { 9 } else { if i == 7 { 4 } else { 2 } },
            })
        })
        .collect();
    let file = read_judge_file(&write(dir.path(), &items)).unwrap();
    let grader = Scripted(|p: &str| {
        if section(p, "[Response]").contains('4') {
            "Correct. Rating: [[9]]"
        } else {
            "Wrong. Rating: [[2]]"
        }
        .to_string()
    });
    let (run, agreement) = judge(&file, &grader, dir.path());
    assert_eq!(
        run.summary.metric("rating").unwrap().mean,
        (4.0 * 9.0 + 4.0 * 2.0) / 8.0
    );
    let ag = agreement.unwrap();
    // Item 7 is labelled 4 against the judge's 2: the only miss, and not within one point.
    assert_eq!(ag.exact.mean, 7.0 / 8.0);
    assert_eq!(ag.within_one.unwrap().mean, 7.0 / 8.0);
    assert!(matches!(run.samples[0].label, Some(Label::Rating(r)) if r == 9.0));
}

#[test]
fn bad_judge_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![
                serde_json::json!({"question": "q", "answer": "a"}),
                serde_json::json!({"question": "q", "answer_a": "a", "answer_b": "b"}),
            ],
            ":2: mixes",
        ),
        (
            vec![serde_json::json!({"question": "q", "answer": "a", "label": 11})],
            ":1: label 11",
        ),
        (
            vec![
                serde_json::json!({"question": "q", "answer_a": "a", "answer_b": "b", "label": "x"}),
            ],
            ":1: label \"x\"",
        ),
        (
            vec![serde_json::json!({"answer": "a"})],
            ":1: no string \"question\"",
        ),
    ];
    for (lines, want) in cases {
        let e = read_judge_file(&write(dir.path(), &lines))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e} lacks {want}");
    }
}

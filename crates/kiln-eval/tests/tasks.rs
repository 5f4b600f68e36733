//! Task files: OLMES request files grouped into questions (unconditional requests left out,
//! choices in order, gold from the label), kiln's JSONL format with few-shot prompts, and
//! the errors a user sees for an unknown task or a malformed file.

use std::io::Write;
use std::path::Path;

use kiln_eval::{load_task, EvalError};

fn write_gz(path: &Path, lines: &[serde_json::Value]) {
    let f = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
}

fn request(
    doc_id: usize,
    idx: usize,
    label: usize,
    context: &str,
    cont: &str,
) -> serde_json::Value {
    serde_json::json!({
        "request_type": "loglikelihood", "doc": {}, "idx": idx, "task_name": "toy",
        "doc_id": doc_id, "native_id": format!("n{doc_id}"), "label": label,
        "request": {"context": context, "continuation": cont}
    })
}

fn olmes_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("toy/rc_0shot");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::write(
        v.join("config.json"),
        r#"{"task_config": {"metric_kwargs": {"uncond_docid_offset": 1000000}}}"#,
    )
    .unwrap();
    write_gz(
        &v.join("requests.jsonl.gz"),
        &[
            request(1000000, 0, 1, "Answer:", " a"),
            request(0, 1, 1, "Q0 Answer:", " b"),
            request(0, 0, 1, "Q0 Answer:", " a"),
            request(1, 0, 0, "Q1 x", " y"),
            request(1, 1, 0, "Q1 z", " y"),
            request(1000001, 0, 0, "Answer:", " y"),
        ],
    );
    std::fs::create_dir_all(dir.path().join("other/rc_5shot")).unwrap();
    dir
}

#[test]
fn olmes_requests_become_questions_without_the_unconditional_ones() {
    let dir = olmes_dir();
    let t = load_task("toy", dir.path(), 0).unwrap();
    assert_eq!(t.mc_items().len(), 2);
    let q0 = &t.mc_items()[0];
    assert_eq!(q0.gold, 1);
    assert_eq!(q0.native_id, "n0");
    let conts: Vec<&str> = q0.choices.iter().map(|c| c.continuation.as_str()).collect();
    assert_eq!(conts, vec![" a", " b"], "choices in idx order");
    assert_eq!(q0.shared_context(), Some("Q0 Answer:"));
    assert_eq!(
        t.mc_items()[1].shared_context(),
        None,
        "Winogrande-style partial contexts"
    );
}

#[test]
fn unknown_task_and_missing_shots_say_what_exists() {
    let dir = olmes_dir();
    let e = load_task("hellaswag", dir.path(), 0).unwrap_err();
    assert!(matches!(e, EvalError::UnknownTask { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("unknown task 'hellaswag'") && msg.contains("toy"),
        "{msg}"
    );
    let msg = load_task("toy", dir.path(), 5).unwrap_err().to_string();
    assert!(
        msg.contains("no 5-shot requests") && msg.contains("can be 0"),
        "{msg}"
    );
    let empty = tempfile::tempdir().unwrap();
    let msg = load_task("toy", empty.path(), 0).unwrap_err().to_string();
    assert!(msg.contains("fetch-assets"), "{msg}");
}

#[test]
fn malformed_request_lines_are_named() {
    let dir = olmes_dir();
    let v = dir.path().join("toy/rc_0shot/requests.jsonl.gz");
    write_gz(
        &v,
        &[
            request(0, 0, 0, "c", " a"),
            serde_json::json!({"doc_id": 3}),
        ],
    );
    let msg = load_task("toy", dir.path(), 0).unwrap_err().to_string();
    assert!(msg.contains("requests.jsonl.gz:2:"), "{msg}");
}

#[test]
fn jsonl_tasks_with_fewshot_examples_from_the_dev_file() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("capitals.jsonl");
    std::fs::write(
        &task,
        "{\"id\": 1, \"query\": \"Capital of France?\", \"choices\": [\"Paris\", \"Rome\"], \"gold\": 0}\n\
         {\"id\": 2, \"query\": \"Capital of Italy?\", \"choices\": [\"Paris\", \"Rome\"], \"gold\": 1, \"target_delimiter\": \"\\n\"}\n",
    )
    .unwrap();
    let t = load_task(task.to_str().unwrap(), dir.path(), 0).unwrap();
    assert_eq!(t.name, "capitals");
    assert_eq!(t.mc_items()[0].choices[1].continuation, " Rome");
    assert_eq!(t.mc_items()[1].choices[0].continuation, "\nParis");
    assert_eq!(t.mc_items()[0].choices[0].context, "Capital of France?");

    let msg = load_task(task.to_str().unwrap(), dir.path(), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("capitals.dev.jsonl"), "{msg}");
    std::fs::write(
        dir.path().join("capitals.dev.jsonl"),
        "{\"query\": \"Capital of Spain?\", \"choices\": [\"Madrid\", \"Lima\"], \"gold\": 0}\n",
    )
    .unwrap();
    let t = load_task(task.to_str().unwrap(), dir.path(), 1).unwrap();
    assert_eq!(
        t.mc_items()[0].choices[0].context,
        "Capital of Spain? Madrid\n\nCapital of France?"
    );
}

#[test]
fn malformed_jsonl_tasks_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("bad.jsonl");
    std::fs::write(
        &task,
        "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n\n{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n",
    )
    .unwrap();
    let msg = load_task(task.to_str().unwrap(), dir.path(), 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad.jsonl:3:") && msg.contains("gold 2"),
        "{msg}"
    );
    std::fs::write(&task, "{\"query\": \"q\", \"choice\": [\"a\"]}\n").unwrap();
    let msg = load_task(task.to_str().unwrap(), dir.path(), 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad.jsonl:1:") && msg.contains("expected"),
        "{msg}"
    );
}

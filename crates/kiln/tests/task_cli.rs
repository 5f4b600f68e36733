//! `kiln finetune eval` and `kiln data prefs` on the tiny random model: the figures and files
//! they write are consistent with the scorer, and bad input is refused naming the line.

mod common;

use std::path::Path;

use common::{kiln_json, run_kiln};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};

fn task(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("task.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            serde_json::json!({"prompt": format!("Say something about {i}."), "answer": "x"})
                .to_string()
        })
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn eval_reports_the_mean_of_its_saved_scores() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let data = task(dir.path());
    let out = dir.path().join("r.json");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = ["finetune", "eval", "-m"].map(String::from).to_vec();
        v.push(model.display().to_string());
        v.extend(["--data".into(), data.display().to_string(), "--json".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // A format check the random model's text sometimes passes: its first character.
    let v = kiln_json(args(&[
        "--scorer",
        "regex",
        "--regex",
        "^[\\x00-\\x7f]",
        "--max-tokens",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let items = saved["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    let mean = items
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .sum::<f64>()
        / 12.0;
    assert!((v["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{v}");
    let (lo, hi) = (
        v["ci95"][0].as_f64().unwrap(),
        v["ci95"][1].as_f64().unwrap(),
    );
    assert!(lo <= mean && mean <= hi, "{v}");
    // Against itself the paired difference is exactly zero.
    let again = kiln_json(args(&[
        "--scorer",
        "regex",
        "--regex",
        "^[\\x00-\\x7f]",
        "--max-tokens",
        "4",
        "--compare",
        out.to_str().unwrap(),
    ]));
    assert_eq!(again["delta"]["mean"], 0.0, "{again}");

    // Without --regex each line's answer is its pattern: the same pattern on every line
    // scores the same greedy completions as --regex did.
    let lines: Vec<String> = (0..12)
        .map(|i| {
            serde_json::json!({"prompt": format!("Say something about {i}."),
                               "answer": "^[\\x00-\\x7f]"})
            .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let per_item = kiln_json(args(&["--scorer", "regex", "--max-tokens", "4"]));
    assert_eq!(per_item["mean"], v["mean"], "{per_item}");

    // The exact scorer needs answers: a line without one is named.
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": \"c\"}\n",
    )
    .unwrap();
    let o = run_kiln(args(&["--scorer", "exact"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("task.jsonl:2"), "{err}");
    std::fs::write(&data, "{\"prompt\": \"a\"\n").unwrap();
    let o = run_kiln(args(&["--scorer", "exact"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("line 1"), "{err}");
}

#[test]
fn prefs_pair_a_passing_sample_with_a_failing_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let data = task(dir.path());
    let out = dir.path().join("prefs.jsonl");
    let re = "[aeiou]";
    let mut args: Vec<String> = ["data", "prefs", "-m"].map(String::from).to_vec();
    args.push(model.display().to_string());
    for a in [
        "--prompts",
        data.to_str().unwrap(),
        "--samples",
        "4",
        "--scorer",
        "regex",
        "--regex",
        re,
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        "--top-p",
        "1",
        "--min-p",
        "0",
        "--max-tokens",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ] {
        args.push(a.into());
    }
    let report = kiln_json(&args);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(report["pairs"].as_u64().unwrap() as usize, lines.len());
    assert_eq!(
        report["pairs"].as_u64().unwrap() + report["tied"].as_u64().unwrap(),
        12
    );
    assert!(
        !lines.is_empty(),
        "no prompt had both kinds of sample: {report}"
    );
    let has_vowel = |s: &str| s.chars().any(|c| "aeiou".contains(c));
    for p in &lines {
        assert!(has_vowel(p["chosen"].as_str().unwrap()), "{p}");
        assert!(!has_vowel(p["rejected"].as_str().unwrap()), "{p}");
        assert_eq!(p["chosen_score"], 1.0);
    }
    // What it wrote is what `kiln finetune dpo` reads.
    kiln_train::data::prefs::read_pairs(&out).unwrap();

    let o = run_kiln(
        args.iter()
            .map(|a| if a == "4" { "1".to_string() } else { a.clone() }),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--samples"));
}

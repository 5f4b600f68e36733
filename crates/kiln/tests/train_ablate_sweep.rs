//! `kiln train ablate` and `kiln train sweep` end to end at toy size, through the binary: a
//! tiny character corpus prepared in a tempdir, a one- or two-layer model, a few steps. The
//! table, the JSON and the PNGs come out; bad --vary / --sizes are one-line errors that list
//! what is allowed; plain `kiln train --config` still trains.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::run_kiln;

const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n\
Speak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";

fn ok(args: &[&str]) -> Output {
    let out = run_kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails_with(args: &[&str], words: &[&str]) {
    let out = run_kiln(args);
    assert!(!out.status.success(), "kiln {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(err.contains(w), "kiln {args:?}: {w:?} not in: {err}");
    }
}

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000
}

/// Corpus → char tokenizer → shards → a tiny config; returns the config path.
fn setup(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, TEXT.repeat(40)).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let tok = dir.join("tok.json");
    ok(&[
        "tokenizer",
        "train",
        "--kind",
        "char",
        "--input",
        &s(&corpus),
        "--out",
        &s(&tok),
    ]);
    let data = dir.join("data");
    ok(&[
        "data",
        "prepare",
        "-t",
        &s(&tok),
        "-i",
        &s(&corpus),
        "-o",
        &s(&data),
    ]);
    let cfg = dir.join("tiny.toml");
    std::fs::write(
        &cfg,
        "[model]\nn_layer = 1\nn_head = 2\nd_model = 16\ncontext = 16\nnorm = \"layernorm\"\n\
         position = \"learned\"\nmlp = \"gelu\"\n\n[data]\ndir = \"data\"\n\n\
         [train]\nsteps = 1000\nbatch_size = 4\nlr = 3e-3\nmin_lr = 3e-4\nwarmup = 100\n\
         eval_batches = 2\nseed = 7\n",
    )
    .unwrap();
    cfg
}

#[test]
fn ablate_and_sweep_at_toy_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let cfg = cfg.to_str().unwrap();
    let p = |name: &str| dir.path().join(name);
    let s = |name: &str| p(name).to_str().unwrap().to_string();

    // Ablation: 2 × 2 variants.
    let out = ok(&[
        "train",
        "ablate",
        "-c",
        cfg,
        "--vary",
        "norm=layernorm,rmsnorm",
        "--vary",
        "position=learned,rope",
        "--steps",
        "6",
        "--out",
        &s("abl"),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| variant | val loss | train loss | tokens/s | params |"),
        "{table}"
    );
    for v in [
        "norm=layernorm, position=learned",
        "norm=layernorm, position=rope",
        "norm=rmsnorm, position=learned",
        "norm=rmsnorm, position=rope",
    ] {
        assert!(table.contains(&format!("| {v} |")), "{v} missing: {table}");
    }
    let md = std::fs::read_to_string(p("abl/ablation.md")).unwrap();
    assert!(
        table.contains(md.trim_end()),
        "printed table differs from ablation.md"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p("abl/ablation.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(json["steps"], 6);
    for r in rows {
        let val = r["val_loss"].as_f64().unwrap();
        // Near ln(vocab) after 6 steps, and finite.
        assert!(val > 0.5 && val < 5.0, "{r}");
        assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["params"].as_u64().unwrap() > 1000, "{r}");
        let run = PathBuf::from(r["run_dir"].as_str().unwrap());
        assert!(is_png(&run.join("loss.png")), "{}", run.display());
    }
    // Learned positions add a context × d_model table: the params column tells variants apart.
    assert_eq!(
        rows[0]["params"].as_u64().unwrap() - rows[1]["params"].as_u64().unwrap(),
        16 * 16
    );

    // Sweep: three sizes, JSON on stdout.
    let out = ok(&[
        "train",
        "sweep",
        "-c",
        cfg,
        "--sizes",
        "L1xD16xH2,L1xD32,L2xD32",
        "--steps",
        "6",
        "--out",
        &s("sw"),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p("sw/scaling.json")).unwrap()).unwrap();
    assert_eq!(report, saved);
    let points = saved["points"].as_array().unwrap();
    let sizes: Vec<&str> = points.iter().map(|p| p["size"].as_str().unwrap()).collect();
    // Without H, the config's head size (16 / 2 = 8) is kept: 32 dims → 4 heads.
    assert_eq!(sizes, ["L1xD16xH2", "L1xD32xH4", "L2xD32xH4"]);
    let flops: Vec<f64> = points
        .iter()
        .map(|p| p["flops"].as_f64().unwrap())
        .collect();
    assert!(flops[0] < flops[1] && flops[1] < flops[2], "{flops:?}");
    for pt in points {
        // C = FLOPs/token × tokens, tokens = 6 steps × 4 × 16.
        assert_eq!(pt["tokens"], 6 * 4 * 16);
        let c = pt["flops_per_token"].as_f64().unwrap() * 384.0;
        assert!((pt["flops"].as_f64().unwrap() - c).abs() < 1e-6 * c, "{pt}");
        assert!(pt["val_loss"].as_f64().unwrap().is_finite(), "{pt}");
    }
    let fit = &saved["fit"];
    for k in ["a", "b", "c", "rmse"] {
        assert!(
            fit[k].as_f64().is_some_and(f64::is_finite),
            "fit.{k}: {saved}"
        );
    }
    assert!(is_png(&p("sw/scaling.png")));
    assert!(std::fs::read_to_string(p("sw/scaling.md"))
        .unwrap()
        .contains("Fit: L(C) ="));

    // Plain `kiln train --config` still works beside the subcommands.
    ok(&[
        "train",
        "--config",
        cfg,
        "--steps",
        "2",
        "--out",
        &s("plain"),
        "--json",
    ]);
    assert!(p("plain/checkpoints/step-000002").is_dir());
}

#[test]
fn bad_vary_and_sizes_say_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("missing.toml");
    let cfg = cfg.to_str().unwrap();
    // Argument errors come before the config is read, so no data is needed.
    fails_with(
        &["train", "ablate", "-c", cfg, "--vary", "act=relu"],
        &["unknown key `act`", "norm, position, mlp"],
    );
    fails_with(
        &["train", "ablate", "-c", cfg, "--vary", "norm=batchnorm"],
        &["batchnorm", "layernorm, rmsnorm"],
    );
    fails_with(
        &["train", "ablate", "-c", cfg, "--vary", "mlp=gelu,relu"],
        &["relu", "gelu, swiglu"],
    );
    fails_with(
        &["train", "sweep", "-c", cfg, "--sizes", "64,128"],
        &["at least 3 sizes"],
    );
    fails_with(
        &["train", "sweep", "-c", cfg, "--sizes", "64,128,big"],
        &["size `big`", "L<layers>xD<d_model>"],
    );
}

#[test]
fn help_explains_ablate_and_sweep() {
    for (args, words) in [
        (
            vec!["train", "--help"],
            vec!["ablate", "sweep", "--resume", "Ctrl-C", "loss.png"],
        ),
        (
            vec!["train", "ablate", "--help"],
            vec![
                "--vary",
                "norm",
                "position",
                "mlp",
                "ablation.md",
                "ablation.json",
            ],
        ),
        (
            vec!["train", "sweep", "--help"],
            vec![
                "--sizes",
                "L<layers>xD<d_model>",
                "scaling.png",
                "scaling.json",
                "6·N",
            ],
        ),
    ] {
        let out = ok(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        for w in words {
            assert!(text.contains(w), "`kiln {}` lacks {w}", args.join(" "));
        }
    }
}

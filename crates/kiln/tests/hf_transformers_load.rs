//! Issue 3, acceptance 5: a llama-style run directory (RMSNorm, RoPE, SwiGLU, grouped-query
//! attention) is a standard Hugging Face Llama directory. Tiny models are trained for a few
//! steps with the CLI; `scripts/hf_llama_loss.py` loads each run in transformers as
//! `LlamaForCausalLM` and scores a batch, and kiln's loss on the same batch must agree within
//! 1e-4. Needs the reference venv with torch and transformers (scripts/setup-reference.sh);
//! skips visibly without it, and fails under `KILN_REQUIRE_ASSETS=1`.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use candle_core::Device;
use common::hf_loss::{hf_losses, kiln_loss};

/// Tokens per row of the scored batch (the tiny models' context).
const T: usize = 32;
const ROWS: usize = 3;

/// The reference Python when it imports torch and transformers; `None` after a visible skip.
fn transformers_python() -> Option<PathBuf> {
    common::python_importing("torch, transformers")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs `kiln ARGS`, asserting success.
fn kiln_ok(args: &[&OsStr]) {
    let out = common::run_kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny Llama-parts config over `data`.
fn tiny_config(data: &Path, tied: bool) -> String {
    format!(
        r#"[model]
n_layer = 2
n_head = 4
n_kv_head = 2
d_model = 32
ffn = 88
context = {T}
norm = "rmsnorm"
position = "rope"
mlp = "swiglu"
tied_embeddings = {tied}

[data]
dir = {data:?}

[train]
steps = 6
batch_size = 4
lr = 3e-3
min_lr = 3e-4
warmup = 2
eval_every = 3
eval_batches = 2
checkpoint_every = 6
seed = 7
"#
    )
}

#[test]
fn llama_style_run_loads_in_transformers_with_the_same_loss() {
    let Some(py) = transformers_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = std::fs::read_to_string(common::repo_root().join("data/shakespeare/input.txt"))
        .expect("the bundled corpus");
    let input = d.join("input.txt");
    std::fs::write(&input, &corpus[..60_000]).unwrap();
    let tok = d.join("tokenizer.json");
    let data = d.join("data");
    kiln_ok(&[
        os("tokenizer"),
        os("train"),
        os("-i"),
        input.as_os_str(),
        os("--vocab-size"),
        os("300"),
        os("-o"),
        tok.as_os_str(),
        os("--json"),
    ]);
    kiln_ok(&[
        os("data"),
        os("prepare"),
        os("-t"),
        tok.as_os_str(),
        os("-i"),
        input.as_os_str(),
        os("-o"),
        data.as_os_str(),
        os("--json"),
    ]);
    let mut runs = vec![];
    for tied in [false, true] {
        let cfg = d.join(format!("tiny-{tied}.toml"));
        std::fs::write(&cfg, tiny_config(&data, tied)).unwrap();
        let run = d.join(format!("run-{tied}"));
        kiln_ok(&[
            os("train"),
            os("--config"),
            cfg.as_os_str(),
            os("--out"),
            run.as_os_str(),
            os("--json"),
        ]);
        runs.push(run);
    }

    // config.json spells out what transformers' LlamaConfig would otherwise default.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["head_dim"], 8);
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["torch_dtype"], "float32");
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["hidden_act"], "silu");
    assert!(config.get("kiln_kinds").is_none(), "{config}");
    // <|endoftext|> (id 0) is BOS and EOS, as GPT-2's; tokenizer_config.json names it.
    assert_eq!(config["eos_token_id"], 0);
    assert_eq!(config["bos_token_id"], 0);
    let tc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(tc["eos_token"], "<|endoftext|>");

    // A batch from the validation shard, next-token targets.
    let ds = kiln_train::TokenDataset::open(&data).unwrap();
    let val = ds.val.to_vec();
    assert!(val.len() > ROWS * 100 + T + 1);
    let (mut inputs, mut targets) = (vec![], vec![]);
    for r in 0..ROWS {
        let w = &val[r * 100..r * 100 + T + 1];
        inputs.push(w[..T].to_vec());
        targets.push(w[1..].to_vec());
    }
    let (hf, version) = hf_losses(&py, &runs, &inputs, &targets);
    for (run, hf) in runs.iter().zip(&hf) {
        let m = kiln_model::load(run, &Device::Cpu).expect("kiln loads the run directory");
        let kiln = kiln_loss(&m, &inputs, &targets);
        let diff = (kiln - hf).abs();
        eprintln!(
            "{}: kiln loss {kiln:.6}, transformers {version} loss {hf:.6}, |diff| {diff:.2e}",
            run.file_name().unwrap().to_string_lossy()
        );
        assert!(
            kiln.is_finite() && kiln > 1.0,
            "loss {kiln} of a barely trained model"
        );
        assert!(
            diff < 1e-4,
            "kiln {kiln} vs transformers {hf}: |diff| {diff}"
        );
    }
}

//! Last-position logits of the SmolLM2 Q4_1 GGUF, kiln vs llama.cpp (llama-cpp-python via
//! `scripts/llama_ref.py`): same prompt tokens, max |difference| < 0.5 and the same argmax.
//!
//! Assets come from `${KILN_ASSETS:-$HOME/.cache/kiln/assets}` and the reference from
//! `${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}`; when either is missing the test
//! prints `SKIP: ...` and passes, unless `KILN_REQUIRE_ASSETS=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use candle_core::Device;
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};

const PROMPTS: &[&str] = &[
    "The capital of France is",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWrite a haiku about autumn leaves.<|im_end|>\n<|im_start|>assistant\n",
    "fn main() {\n    let v: Vec<i32> = (1..=10).filter(|x| x % 2 == 0).collect();\n",
];

const MAX_ABS_DIFF: f32 = 0.5;

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

fn skip(why: &str) {
    if std::env::var("KILN_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!("KILN_REQUIRE_ASSETS=1 but {why}");
    }
    eprintln!("SKIP: {why}");
}

fn model_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("KILN_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/assets"),
    };
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        return Some(p);
    }
    skip(&format!(
        "{} is missing (run scripts/fetch-assets.sh)",
        p.display()
    ));
    None
}

fn reference_python() -> Option<PathBuf> {
    let py = match std::env::var_os("KILN_REF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home().join(".cache/kiln/venv/bin/python"),
    };
    let ok = Command::new(&py)
        .args(["-c", "import llama_cpp, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    skip(&format!(
        "the llama.cpp reference is not installed ({} cannot import llama_cpp; run scripts/setup-reference.sh)",
        py.display()
    ));
    None
}

/// llama.cpp's prompt tokens and last-position logits.
fn reference_logits(py: &Path, model: &Path, prompt: &str) -> (Vec<u32>, Vec<f32>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llama_ref.py");
    let mut child = Command::new(py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running llama_ref.py");
    let req = serde_json::json!({"op": "logits", "model": model, "prompt": prompt});
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(req.to_string().as_bytes())
        .expect("writing the request");
    let out = child.wait_with_output().expect("waiting for llama_ref.py");
    assert!(
        out.status.success(),
        "llama_ref.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from llama_ref.py");
    let ids = v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect();
    let logits = v["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|x| x.as_f64().expect("logit") as f32)
        .collect();
    (ids, logits)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .expect("non-empty logits")
}

#[test]
fn last_position_logits_match_llama_cpp() {
    let (Some(path), Some(py)) = (model_path(), reference_python()) else {
        return;
    };
    let device = Device::Cpu;
    let m = kiln_model::load(&path, &device).expect("loading the GGUF");
    let mut worst = 0f32;
    for prompt in PROMPTS {
        let (ref_ids, ref_logits) = reference_logits(&py, &path, prompt);
        let ids = m.tokenizer.encode(prompt, true, true).expect("tokenizing");
        assert_eq!(ids, ref_ids, "prompt tokens differ for {prompt:?}");
        let mut cache = m.model.new_cache();
        let batch = Batch::from_tokens(&ids, 0, LogitsMode::Last, &device).expect("batch");
        let logits: Vec<f32> = m
            .model
            .forward(&batch, &mut ForwardContext::with_cache(&mut cache))
            .expect("forward")
            .flatten_all()
            .expect("flatten")
            .to_vec1()
            .expect("logits to vec");
        assert_eq!(logits.len(), ref_logits.len(), "vocab sizes differ");
        let (at, diff) = logits
            .iter()
            .zip(&ref_logits)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty logits");
        eprintln!(
            "{} prompt tokens: max |kiln - llama.cpp| = {diff:.4} (at token {at}); argmax kiln {} llama.cpp {}",
            ids.len(),
            argmax(&logits),
            argmax(&ref_logits)
        );
        assert!(
            diff < MAX_ABS_DIFF,
            "logits differ by {diff} at token {at} for {prompt:?} (limit {MAX_ABS_DIFF})"
        );
        assert_eq!(
            argmax(&logits),
            argmax(&ref_logits),
            "argmax differs for {prompt:?}"
        );
        worst = worst.max(diff);
    }
    eprintln!(
        "logits: max abs difference over {} prompts = {worst:.4}",
        PROMPTS.len()
    );
}

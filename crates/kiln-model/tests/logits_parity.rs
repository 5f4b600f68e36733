//! Last-position logits of the SmolLM2 Q4_1 GGUF, kiln vs llama.cpp (llama-cpp-python via
//! `scripts/llama_ref.py`): same prompt tokens, max |difference| < 0.5 and the same argmax.
//!
//! Assets come from `${KILN_ASSETS:-$HOME/.cache/kiln/assets}` and the reference from
//! `${KILN_REF_PYTHON:-$HOME/.cache/kiln/venv/bin/python}`; when either is missing the test
//! prints `SKIP: ...` and passes, unless `KILN_REQUIRE_ASSETS=1`.

use std::path::Path;

use candle_core::Device;
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};

const PROMPTS: &[&str] = &[
    "The capital of France is",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWrite a haiku about autumn leaves.<|im_end|>\n<|im_start|>assistant\n",
    "fn main() {\n    let v: Vec<i32> = (1..=10).filter(|x| x % 2 == 0).collect();\n",
];

const MAX_ABS_DIFF: f32 = 0.5;

/// llama.cpp's prompt tokens and last-position logits.
fn reference_logits(py: &Path, model: &Path, prompt: &str) -> (Vec<u32>, Vec<f32>) {
    let req = serde_json::json!({"op": "logits", "model": model, "prompt": prompt});
    let v = kiln_testing::llama_ref(py, &req);
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
    let (Some(path), Some(py)) = (
        kiln_testing::smollm2(),
        kiln_testing::python_importing("llama_cpp, numpy"),
    ) else {
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

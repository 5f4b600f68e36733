//! Greedy generation parity with llama.cpp: 64 tokens for 5 prompts, EOS ignored, from
//! `kiln generate --temperature 0` and from llama.cpp's argmax loop (`scripts/llama_ref.py`).

mod common;

use std::ffi::OsStr;

use common::{ids, kiln_json, llama_ref, reference_python, smollm2};
use serde_json::json;

const N: usize = 64;

const PROMPTS: &[&str] = &[
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "<|im_start|>user\nGive me three tips for staying healthy.<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at 100 degrees Celsius because",
];

#[test]
fn greedy_64_tokens_match_llama_cpp() {
    let (Some(model), Some(py)) = (smollm2(), reference_python()) else {
        return;
    };
    let reference = llama_ref(
        &py,
        &json!({"op": "greedy", "model": model, "prompts": PROMPTS, "n": N}),
    );
    let mut failures = vec![];
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let want_prompt = ids(&reference["prompt_ids"][i]);
        let want = ids(&reference["ids"][i]);
        assert_eq!(want.len(), N, "reference gave {} tokens", want.len());
        let n = N.to_string();
        let mut args: Vec<&OsStr> = vec!["generate".as_ref(), "--model".as_ref(), model.as_ref()];
        for a in ["--prompt", prompt, "--temperature", "0", "-n", &n] {
            args.push(a.as_ref());
        }
        args.extend(["--ignore-eos", "--json"].map(OsStr::new));
        let g = kiln_json(&args);
        let got_prompt = ids(&g["prompt_ids"]);
        let got = ids(&g["token_ids"]);
        if got_prompt != want_prompt {
            failures.push(format!(
                "  {prompt:?}: prompt tokens differ\n    kiln:      {got_prompt:?}\n    llama.cpp: {want_prompt:?}"
            ));
        } else if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            failures.push(format!(
                "  {prompt:?}: first difference at generated token {at}\n    kiln:      {got:?}\n    llama.cpp: {want:?}"
            ));
        } else {
            eprintln!("identical: {prompt:?} -> {:?}", g["text"]);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} greedy generations differ from llama.cpp:\n{}",
        failures.len(),
        PROMPTS.len(),
        failures.join("\n")
    );
    eprintln!(
        "greedy: {} prompts x {N} tokens identical to llama.cpp",
        PROMPTS.len()
    );
}

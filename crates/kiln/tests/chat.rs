//! `kiln chat --prompt` answers once through the model's ChatML template and exits.

mod common;

use std::ffi::OsStr;

use common::{ids, kiln_json, llama_ref, reference_python, run_kiln, smollm2};
use serde_json::json;

#[test]
fn chat_answers_the_capital_of_france() {
    let Some(model) = smollm2() else {
        return;
    };
    // Default sampling settings (and their default seed), as a user would run it.
    let out = run_kiln([
        OsStr::new("chat"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--prompt"),
        OsStr::new("What is the capital of France?"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kiln chat failed ({}): {stderr}",
        out.status
    );
    eprintln!("kiln chat answered: {}", stdout.trim());
    assert!(
        stdout.contains("Paris"),
        "the answer does not mention Paris: {stdout:?}"
    );
    assert!(
        !stdout.contains("<|im_end|>") && !stdout.contains("<|im_start|>"),
        "the answer leaks ChatML markers: {stdout:?}"
    );
}

#[test]
fn chat_renders_chatml_and_decodes_as_llama_cpp() {
    let (Some(model), Some(py)) = (smollm2(), reference_python()) else {
        return;
    };
    // The ChatML string SmolLM2's template must render for one system and one user turn
    // with the generation prompt; llama.cpp continues it greedily.
    let rendered = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let reference = llama_ref(
        &py,
        &json!({"op": "greedy", "model": model, "prompts": [rendered], "n": 24}),
    );
    let gen = kiln_json([
        OsStr::new("generate"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--prompt"),
        OsStr::new(rendered),
        OsStr::new("--temperature"),
        OsStr::new("0"),
        OsStr::new("-n"),
        OsStr::new("24"),
        OsStr::new("--ignore-eos"),
        OsStr::new("--json"),
    ]);
    assert_eq!(ids(&gen["token_ids"]), ids(&reference["ids"][0]));
    let out = run_kiln([
        OsStr::new("chat"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--system"),
        OsStr::new("You are a helpful assistant."),
        OsStr::new("--temperature"),
        OsStr::new("0"),
        OsStr::new("-n"),
        OsStr::new("24"),
        OsStr::new("--prompt"),
        OsStr::new("What is the capital of France?"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = gen["text"].as_str().expect("text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        text.trim(),
        "chat and generate on the rendered prompt differ"
    );
}

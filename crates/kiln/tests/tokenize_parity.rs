//! Tokenization parity with llama.cpp: `kiln tokenize` against llama-cpp-python on the
//! SmolLM2 GGUF, and against llama.cpp's own GPT-2 tokenizer test vectors
//! (`ggml-vocab-gpt-2.gguf` + `.inp`/`.out`, as its `test-tokenizer-0` runs them).

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{ids, kiln_json, llama_ref, reference_python, smollm2, temp_file};
use serde_json::json;

/// Varied texts: prose, unicode (accents, CJK, Cyrillic, emoji with modifiers), code,
/// whitespace runs (spaces, tabs, newlines), digits, contractions and special tokens.
const TEXTS: &[&str] = &[
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Ünïcödé: naïve café, 日本語のテキスト, Привет мир, emoji 🦀🔥👍🏽 and ½ ∑ ∞ — «quotes»",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "def f(a, b):\n\tif a:\n\t\treturn b  # two spaces\n\treturn None\n",
    "a  b   c\t\td\n\n\ne \t \n  \n\t\tf    \n\n\n\n   ",
    "3.14159 2025-11-23 1234567890 0x1F 1e-9 $1,000,000.00 42nd 007",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|> text<|im_start|>  spaces<|im_end|>",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "   leading and trailing spaces   ",
];

/// `kiln tokenize --file` (the text goes through a file to stay byte exact).
fn kiln_ids(model: &Path, text: &str, extra: &[&str]) -> Vec<u32> {
    let f = temp_file(text.as_bytes());
    let mut args: Vec<&OsStr> = vec![
        "tokenize".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--file".as_ref(),
        f.path().as_os_str(),
        "--json".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    ids(&kiln_json(&args)["ids"])
}

fn check_mode(model: &Path, py: &Path, add_special: bool, parse_special: bool) -> Vec<String> {
    let reference = llama_ref(
        py,
        &json!({"op": "tokenize", "model": model, "texts": TEXTS,
                "add_special": add_special, "parse_special": parse_special}),
    );
    let mut extra = vec![];
    if !add_special {
        extra.push("--no-bos");
    }
    if !parse_special {
        extra.push("--no-parse-special");
    }
    let mut failures = vec![];
    for (text, want) in TEXTS.iter().zip(reference["ids"].as_array().expect("ids")) {
        let want = ids(want);
        let got = kiln_ids(model, text, &extra);
        if got != want {
            failures.push(format!(
                "  add_special={add_special} parse_special={parse_special} {text:?}\n    kiln:      {got:?}\n    llama.cpp: {want:?}"
            ));
        }
    }
    failures
}

#[test]
fn smollm2_tokenization_matches_llama_cpp() {
    let (Some(model), Some(py)) = (smollm2(), reference_python()) else {
        return;
    };
    let mut failures = vec![];
    for (add_special, parse_special) in [(true, true), (false, false)] {
        failures.extend(check_mode(&model, &py, add_special, parse_special));
    }
    assert!(
        failures.is_empty(),
        "{} of {} tokenizations differ from llama.cpp:\n{}",
        failures.len(),
        2 * TEXTS.len(),
        failures.join("\n")
    );
    eprintln!(
        "tokenization: {} texts x 2 modes identical to llama.cpp",
        TEXTS.len()
    );
}

/// llama.cpp's `.inp` holds the texts separated by `\n__ggml_vocab_test__\n` lines; the
/// `.out` holds one line of space-separated ids per text.
fn read_vocab_tests(inp: &Path, out: &Path) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(inp).expect("reading .inp");
    let out = std::fs::read_to_string(out).expect("reading .out");
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("token id in .out"))
                .collect()
        })
        .collect();
    assert!(
        expected.len() >= texts.len(),
        ".inp has {} texts but .out only {} lines",
        texts.len(),
        expected.len()
    );
    texts
        .into_iter()
        .map(str::to_string)
        .zip(expected)
        .collect()
}

#[test]
fn gpt2_vocab_test_vectors() {
    let Some(vocab) = common::asset("vocab/ggml-vocab-gpt-2.gguf", "scripts/setup-reference.sh")
    else {
        return;
    };
    let cases = read_vocab_tests(
        &vocab.with_extension("gguf.inp"),
        &vocab.with_extension("gguf.out"),
    );
    assert!(cases.len() >= 40, "only {} vocab test cases", cases.len());
    let mut failures = vec![];
    for (text, want) in &cases {
        // test-tokenizer-0 tokenizes with add_special=false, parse_special=false.
        let got = kiln_ids(&vocab, text, &["--no-bos", "--no-parse-special"]);
        if &got != want {
            failures.push(format!(
                "  {text:?}\n    kiln:      {got:?}\n    llama.cpp: {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} GPT-2 vocab test vectors differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "ggml-vocab-gpt-2: all {} test vectors identical",
        cases.len()
    );
}

//! Bad input gives a one-line `error:` naming the problem and a non-zero exit, never a
//! panic: missing, corrupt or truncated model files, unsupported architectures and quant
//! types, prompts longer than the context, invalid sampling values, non-UTF-8 text files.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;

use common::{kiln, smollm2, temp_file};

/// One bad invocation and the words its error must contain (case-insensitive).
struct Case {
    what: &'static str,
    args: Vec<OsString>,
    mentions: Vec<String>,
}

fn case(what: &'static str, args: &[&OsStr], mentions: &[&str]) -> Case {
    Case {
        what,
        args: args.iter().map(|a| a.to_os_string()).collect(),
        mentions: mentions.iter().map(|m| m.to_string()).collect(),
    }
}

/// Runs every case and fails with a list of all that misbehaved.
fn check(cases: &[Case]) {
    let mut failures = vec![];
    for c in cases {
        // Many users (and this CI machine) run with RUST_BACKTRACE=1: the error must still
        // be one line then.
        let out = kiln()
            .args(&c.args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("running kiln");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let trimmed = stderr.trim_end();
        let lower = trimmed.to_lowercase();
        let mut problems = vec![];
        if out.status.success() {
            problems.push("exited 0".to_string());
        }
        if lower.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if !trimmed.starts_with("error:") {
            problems.push("stderr does not start with `error:`".to_string());
        }
        if trimmed.lines().count() != 1 {
            problems.push(format!("{} lines on stderr", trimmed.lines().count()));
        }
        for m in &c.mentions {
            if !lower.contains(&m.to_lowercase()) {
                problems.push(format!("does not mention {m:?}"));
            }
        }
        if problems.is_empty() {
            eprintln!("ok: {}: {trimmed}", c.what);
        } else {
            let shown: String = trimmed.lines().take(4).collect::<Vec<_>>().join("\n      ");
            failures.push(format!(
                "  {} (kiln {:?}, {}): {}\n      {shown}",
                c.what,
                c.args,
                out.status,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not reported as a one-line error:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn s(x: &str) -> &OsStr {
    OsStr::new(x)
}

/// The last path component, which every file error must name.
fn name(p: &Path) -> String {
    p.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// A minimal GGUF v3 file: string metadata, then tensor infos of the given ggml type with
/// zeroed data, aligned to 32 bytes as llama.cpp writes them.
fn gguf(kvs: &[(&str, &str)], tensors: &[(&str, &[u64], u32, usize)]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, x: &str) {
        out.extend((x.len() as u64).to_le_bytes());
        out.extend(x.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        string(&mut out, k);
        out.extend(8u32.to_le_bytes()); // GGUF_TYPE_STRING
        string(&mut out, v);
    }
    let mut offset = 0u64;
    for (name, dims, ty, bytes) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (*bytes as u64).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.resize(out.len() + offset as usize, 0);
    out
}

#[test]
fn missing_and_corrupt_model_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model.gguf");
    let random = dir.path().join("random-bytes.gguf");
    // A fixed pseudo-random byte pattern (xorshift), not a GGUF.
    let mut x = 0x9e3779b97f4a7c15u64;
    let bytes: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let mut cases = vec![];
    for (what, p) in [
        ("missing model file", &missing),
        ("random bytes as a model", &random),
        ("empty model file", &empty),
    ] {
        let n = name(p);
        for sub in ["generate", "info"] {
            let mut args = vec![s(sub), s("--model"), p.as_os_str()];
            if sub == "generate" {
                args.extend([s("--prompt"), s("hi")]);
            }
            cases.push(case(what, &args, &[&n]));
        }
        cases.push(case(
            what,
            &[
                s("tokenize"),
                s("--model"),
                p.as_os_str(),
                s("--text"),
                s("hi"),
            ],
            &[&n],
        ));
    }
    check(&cases);
}

#[test]
fn truncated_gguf() {
    let Some(model) = smollm2() else {
        return;
    };
    let full = std::fs::read(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("first-megabyte.gguf");
    std::fs::write(&head, &full[..1 << 20]).unwrap();
    let short = dir.path().join("one-kb-short.gguf");
    std::fs::write(&short, &full[..full.len() - 1024]).unwrap();
    let mut cases = vec![];
    for (what, p) in [
        ("GGUF cut after 1 MB", &head),
        ("GGUF cut 1 KB short", &short),
    ] {
        let n = name(p);
        cases.push(case(
            what,
            &[
                s("generate"),
                s("--model"),
                p.as_os_str(),
                s("--prompt"),
                s("hi"),
            ],
            &[&n, "truncated"],
        ));
        cases.push(case(
            what,
            &[s("info"), s("--model"), p.as_os_str()],
            &[&n, "truncated"],
        ));
    }
    check(&cases);
}

#[test]
fn unsupported_architecture_and_quant_type() {
    let dir = tempfile::tempdir().unwrap();
    let bert = dir.path().join("bert.gguf");
    std::fs::write(&bert, gguf(&[("general.architecture", "bert")], &[])).unwrap();
    // ggml type 16 is IQ2_XXS (66 bytes per 256 weights).
    let iq = dir.path().join("iq2-xxs.gguf");
    std::fs::write(
        &iq,
        gguf(
            &[("general.architecture", "llama")],
            &[("blk.0.attn_q.weight", &[256, 2], 16, 2 * 66)],
        ),
    )
    .unwrap();
    check(&[
        case(
            "unsupported architecture",
            &[
                s("generate"),
                s("--model"),
                bert.as_os_str(),
                s("--prompt"),
                s("hi"),
            ],
            &["architecture", "bert"],
        ),
        case(
            "unsupported architecture",
            &[s("info"), s("--model"), bert.as_os_str()],
            &["architecture", "bert"],
        ),
        case(
            "unsupported quant type",
            &[
                s("generate"),
                s("--model"),
                iq.as_os_str(),
                s("--prompt"),
                s("hi"),
            ],
            &["IQ2_XXS"],
        ),
        case(
            "unsupported quant type",
            &[s("info"), s("--model"), iq.as_os_str()],
            &["IQ2_XXS"],
        ),
    ]);
}

#[test]
fn corrupt_safetensors_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
        "intermediate_size":128,"num_attention_heads":4,"num_key_value_heads":2,
        "num_hidden_layers":2,"vocab_size":100,"rms_norm_eps":1e-5,
        "max_position_embeddings":128}"#;
    // Without a tokenizer.json: any clean error will do.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::write(bare.join("config.json"), config).unwrap();
    std::fs::write(bare.join("model.safetensors"), b"0123456789").unwrap();
    // With a valid tokenizer.json, the error must be about the safetensors file.
    let with_tok = dir.path().join("with-tokenizer");
    std::fs::create_dir(&with_tok).unwrap();
    std::fs::write(with_tok.join("config.json"), config).unwrap();
    std::fs::write(with_tok.join("model.safetensors"), b"0123456789").unwrap();
    std::fs::write(
        with_tok.join("tokenizer.json"),
        r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"<unk>":1},"unk_token":"<unk>"}}"#,
    )
    .unwrap();
    // A header length that points past the end of the file.
    let cut = dir.path().join("cut-header");
    std::fs::create_dir(&cut).unwrap();
    std::fs::write(cut.join("config.json"), config).unwrap();
    std::fs::copy(with_tok.join("tokenizer.json"), cut.join("tokenizer.json")).unwrap();
    let mut st = 200u64.to_le_bytes().to_vec();
    st.extend(br#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[100,64],"#);
    std::fs::write(cut.join("model.safetensors"), st).unwrap();
    let mut cases = vec![];
    for (what, p, mentions) in [
        (
            "10-byte model.safetensors, no tokenizer.json",
            &bare,
            vec![],
        ),
        ("10-byte model.safetensors", &with_tok, vec!["safetensors"]),
        ("safetensors header cut short", &cut, vec!["safetensors"]),
    ] {
        cases.push(case(
            what,
            &[
                s("generate"),
                s("--model"),
                p.as_os_str(),
                s("--prompt"),
                s("hi"),
            ],
            &mentions,
        ));
        cases.push(case(
            what,
            &[s("info"), s("--model"), p.as_os_str()],
            &mentions,
        ));
    }
    check(&cases);
}

#[test]
fn prompt_longer_than_the_context() {
    let Some(model) = smollm2() else {
        return;
    };
    let m = model.as_os_str();
    // SmolLM2's context is 8192 tokens; " hello" is one token.
    let long_prompt = " hello".repeat(9000);
    check(&[
        case(
            "prompt + max tokens over the context",
            &[
                s("generate"),
                s("--model"),
                m,
                s("--prompt"),
                s("hi"),
                s("--max-tokens"),
                s("9000"),
            ],
            &["context"],
        ),
        case(
            "prompt over the context",
            &[
                s("generate"),
                s("--model"),
                m,
                s("--prompt"),
                s(&long_prompt),
                s("-n"),
                s("1"),
            ],
            &["context"],
        ),
        case(
            "chat reply over the context",
            &[
                s("chat"),
                s("--model"),
                m,
                s("--prompt"),
                s("hi"),
                s("--max-tokens"),
                s("9000"),
            ],
            &["context"],
        ),
    ]);
}

#[test]
fn invalid_sampling_values() {
    let Some(model) = smollm2() else {
        return;
    };
    let m = model.as_os_str();
    let gen = |extra: &[&'static str]| {
        let mut a = vec![s("generate"), s("--model"), m, s("--prompt"), s("hi")];
        a.extend(extra.iter().map(|x| s(x)));
        a
    };
    check(&[
        case(
            "negative temperature",
            &gen(&["--temperature", "-1"]),
            &["temperature"],
        ),
        case(
            "negative temperature",
            &gen(&["--temperature=-1"]),
            &["temperature"],
        ),
        case("zero top-p", &gen(&["--top-p", "0"]), &["top"]),
        case("top-p above 1", &gen(&["--top-p", "1.5"]), &["top"]),
        case(
            "negative temperature in chat",
            &[
                s("chat"),
                s("--model"),
                m,
                s("--prompt"),
                s("hi"),
                s("--temperature=-1"),
            ],
            &["temperature"],
        ),
    ]);
}

#[test]
fn non_utf8_text_files() {
    let Some(model) = smollm2() else {
        return;
    };
    let bad = temp_file(b"valid text, then \xff\xfe invalid bytes\n");
    let n = name(bad.path());
    check(&[
        case(
            "non-UTF-8 file to tokenize",
            &[
                s("tokenize"),
                s("--model"),
                model.as_os_str(),
                s("--file"),
                bad.path().as_os_str(),
            ],
            &[&n, "UTF-8"],
        ),
        case(
            "non-UTF-8 file for perplexity",
            &[
                s("perplexity"),
                s("--model"),
                model.as_os_str(),
                s("--file"),
                bad.path().as_os_str(),
            ],
            &[&n, "UTF-8"],
        ),
    ]);
}

#[test]
fn bench_serve_bad_settings() {
    // None of these reach the network: the URL and the settings are checked first.
    let serve = |extra: &[&'static str]| {
        let mut a = vec![s("bench"), s("serve"), s("--model"), s("x")];
        a.extend(extra.iter().map(|x| s(x)));
        a
    };
    check(&[
        case(
            "remote URL without --allow-remote",
            &serve(&["--url", "http://10.1.2.3:8000"]),
            &["10.1.2.3", "--allow-remote"],
        ),
        case(
            "not a URL",
            &serve(&["--url", "127.0.0.1:8000"]),
            &["--url"],
        ),
        case(
            "shared prefix as long as the prompt",
            &serve(&["--prompt-tokens", "100", "--shared-prefix-tokens", "100"]),
            &["--shared-prefix-tokens"],
        ),
        case(
            "zero concurrency",
            &serve(&["--concurrency", "1,0"]),
            &["--concurrency"],
        ),
        case(
            "probe without a shared prefix",
            &serve(&["--prefix-cache-probe"]),
            &["--shared-prefix-tokens"],
        ),
    ]);
}

//! `kiln finetune merge` on the real quantized base: the merged Hugging Face directory loads
//! in transformers as `LlamaForCausalLM` and scores text as kiln scores the adapted GGUF
//! (the adapter on the quantized base), within the gap the base's quantized kernels alone
//! make. This covers the Q/K row order too: a GGUF's Q/K rows are permuted for interleaved
//! RoPE, and a merged directory or PEFT adapter written in that order would score far off.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use candle_core::Device;
use common::hf_loss::{hf_losses, kiln_loss};
use kiln_model::lora::{save_adapter, LoraConfig};
use kiln_model::tiny::random_adapter;

const T: usize = 40;

fn merge(gguf: &Path, adapter: &Path, out: &Path) {
    let args: [&OsStr; 9] = [
        "finetune".as_ref(),
        "merge".as_ref(),
        "--model".as_ref(),
        gguf.as_os_str(),
        "--adapter".as_ref(),
        adapter.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ];
    let v = common::kiln_json(args);
    assert_eq!(v["merged"], 3 * 30, "{v}");
}

#[test]
fn merged_smollm2_scores_in_transformers_as_the_adapted_gguf() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let Some(py) = common::python_importing("torch, transformers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = kiln_model::load(&gguf, &Device::Cpu).unwrap();
    let cfg = &base.info.config;
    let lora = LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "k_proj".into(), "down_proj".into()],
        use_rslora: false,
        base_model_name_or_path: None,
    };
    let adapter = dir.path().join("adapter");
    save_adapter(
        &adapter,
        &random_adapter(cfg, &lora, 5, 0.05, 0.15).unwrap(),
        cfg,
    )
    .unwrap();
    let zero = dir.path().join("zero");
    save_adapter(
        &zero,
        &random_adapter(cfg, &lora, 5, 0.05, 0.0).unwrap(),
        cfg,
    )
    .unwrap();

    let text = "The quick brown fox jumps over the lazy dog. Rust is a systems programming \
                language that runs blazingly fast, prevents segfaults, and guarantees thread \
                safety. It was designed by Graydon Hoare at Mozilla Research.";
    let ids = base.tokenizer.encode(text, false, false).unwrap();
    assert!(ids.len() > T, "{} tokens", ids.len());
    let inputs = vec![ids[..T].to_vec()];
    let targets = vec![ids[1..=T].to_vec()];

    let merged = dir.path().join("merged");
    let dequantized = dir.path().join("dequantized");
    merge(&gguf, &adapter, &merged);
    merge(&gguf, &zero, &dequantized);
    let (hf, version) = hf_losses(&py, &[dequantized, merged], &inputs, &targets);
    let kiln_base = kiln_loss(&base, &inputs, &targets);
    drop(base);
    let adapted = kiln_model::loader::load_with_adapter(&gguf, &Device::Cpu, &adapter).unwrap();
    let kiln_adapted = kiln_loss(&adapted, &inputs, &targets);
    let gap = (hf[0] - kiln_base).abs();
    let err = (hf[1] - kiln_adapted).abs();
    eprintln!(
        "kiln GGUF {kiln_base:.4}, adapted {kiln_adapted:.4}; transformers {version}: \
         dequantized {:.4}, merged {:.4}",
        hf[0], hf[1]
    );
    assert!(
        (kiln_adapted - kiln_base).abs() > 0.2,
        "the adapter should move the loss ({kiln_base} -> {kiln_adapted})"
    );
    assert!(
        gap < 0.05,
        "dequantized base in transformers {} vs kiln's GGUF {kiln_base}",
        hf[0]
    );
    assert!(
        err < 2.0 * gap + 0.02,
        "merged in transformers {} vs kiln adapted {kiln_adapted} (quantization gap {gap})",
        hf[1]
    );
}

//! LoRA's math on whole models: an adapter whose B is zero leaves the logits exactly as
//! the base's; a non-zero adapter gives the logits of a base whose weights were changed by
//! scale · B·A, computed here naively in f64 and written as a plain model directory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use kiln_model::config::ModelConfig;
use kiln_model::lora::{LoraAdapter, LoraConfig, LoraModule, LoraSet};
use kiln_model::tiny::{random_adapter, write_tiny_llama, TinyLlamaSpec};
use kiln_model::{loader, ModelError};

fn config(modules: &[&str], rslora: bool) -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: modules.iter().map(|m| m.to_string()).collect(),
        use_rslora: rslora,
        base_model_name_or_path: None,
    }
}

/// An adapter on every layer for `cfg`'s modules, random A, and B random or zero.
fn adapter(base: &ModelConfig, cfg: &LoraConfig, zero_b: bool) -> LoraAdapter {
    random_adapter(base, cfg, 7, 0.2, if zero_b { 0.0 } else { 0.2 }).unwrap()
}

fn logits(path: &Path, lora: Option<&LoraAdapter>, tokens: &[u32]) -> Vec<f32> {
    let set = lora.map(|a| Arc::new(LoraSet::from_adapter(a).unwrap()));
    let m = loader::load_with_lora(path, &Device::Cpu, |_| Ok::<_, ModelError>(set)).unwrap();
    kiln_testing::reference::logits(&m.model, tokens)
}

const TOKENS: [u32; 9] = [256, 72, 101, 108, 108, 111, 44, 32, 119];

fn tiny(dir: &Path) -> ModelConfig {
    write_tiny_llama(dir, &TinyLlamaSpec::default()).unwrap();
    loader::load(dir, &Device::Cpu).unwrap().info.config
}

#[test]
fn zero_b_leaves_logits_exactly_as_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny(dir.path());
    let all = LoraModule::NAMES;
    let ad = adapter(&base, &config(&all, false), true);
    assert_eq!(
        logits(dir.path(), Some(&ad), &TOKENS),
        logits(dir.path(), None, &TOKENS)
    );
}

/// W' = W + scale · B·A for every adapted layer, in f64, written as a model directory.
fn write_merged(base_dir: &Path, out: &Path, ad: &LoraAdapter) {
    std::fs::create_dir_all(out).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(base_dir.join(f), out.join(f)).unwrap();
    }
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(base_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let scale = ad.config.scaling();
    let r = ad.config.r;
    for (target, w) in &ad.weights {
        let name = target.base_weight_name();
        let base = &tensors[&name];
        let (n, k) = base.dims2().unwrap();
        let wv: Vec<f32> = base.flatten_all().unwrap().to_vec1().unwrap();
        let a: Vec<f32> = w.a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = w.b.flatten_all().unwrap().to_vec1().unwrap();
        let merged: Vec<f32> = (0..n * k)
            .map(|i| {
                let (row, col) = (i / k, i % k);
                let ba: f64 = (0..r)
                    .map(|j| b[row * r + j] as f64 * a[j * k + col] as f64)
                    .sum();
                (wv[i] as f64 + scale * ba) as f32
            })
            .collect();
        tensors.insert(
            name,
            Tensor::from_vec(merged, (n, k), &Device::Cpu).unwrap(),
        );
    }
    candle_core::safetensors::save(&tensors, out.join("model.safetensors")).unwrap();
}

#[test]
fn adapted_logits_equal_a_naively_merged_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny(dir.path());
    for (modules, rslora) in [
        (vec!["q_proj", "v_proj"], false),
        (
            vec!["k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            true,
        ),
    ] {
        let ad = adapter(&base, &config(&modules, rslora), false);
        let merged = dir.path().join(format!("merged-{rslora}"));
        write_merged(dir.path(), &merged, &ad);
        let got = logits(dir.path(), Some(&ad), &TOKENS);
        let want = logits(&merged, None, &TOKENS);
        let base_logits = logits(dir.path(), None, &TOKENS);
        let moved = got
            .iter()
            .zip(&base_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 1e-2,
            "the adapter should change the logits ({moved})"
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-4,
                "{modules:?} logit {i}: {g} vs merged {w}"
            );
        }
    }
}

/// On the real quantized base (QLoRA's case) a zero-B adapter changes nothing either.
#[test]
fn zero_b_on_smollm2_leaves_logits_exactly_as_the_base() {
    let Some(gguf) = kiln_testing::smollm2() else {
        return;
    };
    let base = loader::load(&gguf, &Device::Cpu).unwrap().info.config;
    let cfg = config(&["q_proj", "v_proj", "down_proj"], false);
    let ad = adapter(&base, &cfg, true);
    assert!(cfg.modules().unwrap().contains(&LoraModule::DownProj));
    assert_eq!(
        logits(&gguf, Some(&ad), &TOKENS),
        logits(&gguf, None, &TOKENS)
    );
}

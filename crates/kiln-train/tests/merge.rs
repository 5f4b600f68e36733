//! `merge_adapter`: the merged model (no adapter) gives the adapted model's logits. On an f32
//! base within 1e-4; on the quantized SmolLM2 GGUF within the error the base's quantized
//! kernels themselves make against its dequantized weights.

use std::path::Path;

use candle_core::Device;
use kiln_model::loader;
use kiln_model::lora::{save_adapter, LoraConfig, LoraModule};
use kiln_model::tiny::{random_adapter, write_tiny_llama, TinyLlamaSpec};
use kiln_train::merge::merge_adapter;

const TOKENS: [u32; 10] = [1, 72, 101, 108, 108, 111, 44, 32, 119, 111];

fn lora(modules: &[&str], r: usize) -> LoraConfig {
    LoraConfig {
        r,
        alpha: 2.0 * r as f64,
        dropout: 0.0,
        target_modules: modules.iter().map(|m| m.to_string()).collect(),
        use_rslora: false,
        base_model_name_or_path: None,
    }
}

const ALL: [&str; 7] = LoraModule::NAMES;

fn logits(model: &Path, adapter: Option<&Path>) -> Vec<f32> {
    let dev = Device::Cpu;
    let m = match adapter {
        Some(a) => loader::load_with_adapter(model, &dev, a),
        None => loader::load(model, &dev),
    }
    .unwrap();
    kiln_testing::reference::logits(&m.model, &TOKENS)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Writes a random adapter for the model at `base` into `dir`.
fn write_adapter(base: &Path, dir: &Path, cfg: &LoraConfig, b_std: f32) {
    let base_cfg = loader::load(base, &Device::Cpu).unwrap().info.config;
    let ad = random_adapter(&base_cfg, cfg, 3, 0.05, b_std).unwrap();
    save_adapter(dir, &ad, &base_cfg).unwrap();
}

#[test]
fn merged_tiny_model_gives_the_adapted_logits() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    write_tiny_llama(&base, &TinyLlamaSpec::default()).unwrap();
    let adapter = dir.path().join("adapter");
    write_adapter(&base, &adapter, &lora(&ALL, 4), 0.5);
    let out = dir.path().join("merged");
    let report = merge_adapter(&base, &adapter, &out).unwrap();
    assert_eq!(report.merged, 7 * TinyLlamaSpec::default().layers);

    let adapted = logits(&base, Some(&adapter));
    let merged = logits(&out, None);
    let moved = max_diff(&adapted, &logits(&base, None));
    assert!(moved > 1e-2, "the adapter should move the logits ({moved})");
    let err = max_diff(&adapted, &merged);
    assert!(err < 1e-4, "merged vs adapted: {err}");
    // The merged directory is a whole model: its tokenizer and chat template came along.
    let m = loader::load(&out, &Device::Cpu).unwrap();
    assert!(m.chat_template.is_some());
}

#[test]
fn merge_refuses_an_adapter_for_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    write_tiny_llama(&base, &TinyLlamaSpec::default()).unwrap();
    let other = dir.path().join("other");
    let spec = TinyLlamaSpec {
        hidden: 2 * TinyLlamaSpec::default().hidden,
        ..TinyLlamaSpec::default()
    };
    write_tiny_llama(&other, &spec).unwrap();
    let adapter = dir.path().join("adapter");
    write_adapter(&other, &adapter, &lora(&["q_proj"], 2), 0.5);
    let err = merge_adapter(&base, &adapter, &dir.path().join("merged"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("q_proj"), "{err}");
    assert!(!dir.path().join("merged/model.safetensors").exists());
}

/// QLoRA's case: the adapted model runs on the quantized base, the merged one on its
/// dequantized weights. The merge must add nothing to the gap between those two that a
/// zero adapter (the dequantized base alone) already shows.
#[test]
fn merged_smollm2_gives_the_adapted_logits_within_the_quantization_gap() {
    let Some(gguf) = kiln_testing::smollm2() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = lora(&["q_proj", "v_proj", "down_proj"], 8);
    let zero = dir.path().join("zero");
    write_adapter(&gguf, &zero, &cfg, 0.0);
    let adapter = dir.path().join("adapter");
    write_adapter(&gguf, &adapter, &cfg, 0.05);

    let base = logits(&gguf, None);
    let dequantized_dir = dir.path().join("dequantized");
    merge_adapter(&gguf, &zero, &dequantized_dir).unwrap();
    let gap = max_diff(&base, &logits(&dequantized_dir, None));

    let adapted = logits(&gguf, Some(&adapter));
    let moved = max_diff(&adapted, &base);
    let merged_dir = dir.path().join("merged");
    merge_adapter(&gguf, &adapter, &merged_dir).unwrap();
    let err = max_diff(&adapted, &logits(&merged_dir, None));
    eprintln!("quantization gap {gap}, adapter moved {moved}, merged vs adapted {err}");
    assert!(
        moved > 4.0 * gap,
        "adapter too weak to test ({moved} vs {gap})"
    );
    assert!(
        err < 2.0 * gap + 1e-3,
        "merged vs adapted {err}, quantization gap {gap}"
    );
}

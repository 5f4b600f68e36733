//! Adapter files: round trips, PEFT's exact names and shapes on SmolLM2's shape, rejection
//! of adapters that do not fit, and (where the reference venv has `peft`) PEFT itself
//! loading what kiln wrote.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::config::{HfLlamaConfig, ModelConfig};
use crate::error::{AdapterShapeMismatch, ModelError};
use crate::lora::LoraModule;

/// SmolLM2-135M's shape: d 576, 9 heads / 3 KV heads of 64, FFN 1536, 30 layers.
fn smollm2() -> ModelConfig {
    let hf: HfLlamaConfig = serde_json::from_value(serde_json::json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
        "max_position_embeddings": 8192, "tie_word_embeddings": true
    }))
    .unwrap();
    hf.into_config().unwrap()
}

fn lora_config(r: usize, modules: &[&str]) -> LoraConfig {
    LoraConfig {
        r,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: modules.iter().map(|m| m.to_string()).collect(),
        use_rslora: false,
        base_model_name_or_path: None,
    }
}

fn random(rng: &mut StdRng, shape: [usize; 2]) -> Tensor {
    let data: Vec<f32> = (0..shape[0] * shape[1])
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(data, &shape, &Device::Cpu).unwrap()
}

/// An adapter on every layer of `base` for `modules`, with random factors of the right shape.
fn random_adapter(base: &ModelConfig, config: LoraConfig, seed: u64) -> LoraAdapter {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weights = BTreeMap::new();
    for module in config.modules().unwrap() {
        let (fin, fout) = module.features(base).unwrap();
        for layer in 0..base.num_layers {
            let a = random(&mut rng, LoraFactor::A.shape(config.r, fin, fout));
            let b = random(&mut rng, LoraFactor::B.shape(config.r, fin, fout));
            weights.insert(LoraTarget::new(layer, module), LoraWeights { a, b });
        }
    }
    LoraAdapter { config, weights }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn round_trip_keeps_config_and_every_value() {
    let base = smollm2();
    let config = LoraConfig {
        use_rslora: true,
        dropout: 0.1,
        base_model_name_or_path: Some("SmolLM2-135M-Instruct".into()),
        ..lora_config(4, &LoraModule::NAMES)
    };
    let adapter = random_adapter(&base, config, 1);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(dir.path(), &adapter, &base).unwrap();
    let back = load_adapter(dir.path(), &base, &Device::Cpu).unwrap();
    // PEFT keeps target_modules as a set; kiln writes it sorted.
    let mut sorted = adapter.config.clone();
    sorted.target_modules.sort();
    assert_eq!(back.config, sorted);
    assert_eq!(back.weights.len(), 7 * 30);
    for (target, w) in &adapter.weights {
        let got = &back.weights[target];
        assert_eq!(values(&got.a), values(&w.a), "{target} A");
        assert_eq!(values(&got.b), values(&w.b), "{target} B");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE],
        "temp files left"
    );
}

/// On a GGUF base (Q/K rows in llama.cpp's interleaved-RoPE order) the file holds lora_B
/// of q_proj and k_proj in Hugging Face's row order, the order PEFT applies it in, and
/// loading restores the base's order.
#[test]
fn interleaved_base_writes_q_k_in_hf_row_order_and_reads_back() {
    let mut base = smollm2();
    base.rope.style = crate::config::RopeStyle::Interleaved;
    let adapter = random_adapter(&base, lora_config(2, &["q_proj", "k_proj", "v_proj"]), 3);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(dir.path(), &adapter, &base).unwrap();
    let back = load_adapter(dir.path(), &base, &Device::Cpu).unwrap();
    let file = candle_core::safetensors::load(dir.path().join(ADAPTER_WEIGHTS_FILE), &Device::Cpu)
        .unwrap();
    for (target, w) in &adapter.weights {
        assert_eq!(values(&back.weights[target].b), values(&w.b), "{target} B");
        let stored = values(&file[&target.peft_tensor_name(LoraFactor::B)]);
        let heads = match target.module {
            LoraModule::QProj => base.num_heads,
            LoraModule::KProj => base.num_kv_heads,
            _ => {
                assert_eq!(stored, values(&w.b), "{target}: v_proj is not reordered");
                continue;
            }
        };
        let (d, r) = (base.head_dim, 2);
        let rows = w.b.to_vec2::<f32>().unwrap();
        for h in 0..heads {
            for i in 0..d / 2 {
                for j in 0..2 {
                    let hf_row = h * d + j * d / 2 + i;
                    let gguf_row = h * d + 2 * i + j;
                    assert_eq!(&stored[hf_row * r..hf_row * r + r], &rows[gguf_row][..]);
                }
            }
        }
    }
}

#[test]
fn smollm2_adapter_has_peft_names_shapes_and_f32() {
    let base = smollm2();
    let all = LoraModule::NAMES;
    let adapter = random_adapter(&base, lora_config(8, &all), 2);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(dir.path(), &adapter, &base).unwrap();
    let bytes = std::fs::read(dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // Shapes written out by hand from SmolLM2's config, not from kiln's shape code.
    let expected: [(&str, [usize; 2], [usize; 2]); 7] = [
        ("self_attn.q_proj", [8, 576], [576, 8]),
        ("self_attn.k_proj", [8, 576], [192, 8]),
        ("self_attn.v_proj", [8, 576], [192, 8]),
        ("self_attn.o_proj", [8, 576], [576, 8]),
        ("mlp.gate_proj", [8, 576], [1536, 8]),
        ("mlp.up_proj", [8, 576], [1536, 8]),
        ("mlp.down_proj", [8, 1536], [576, 8]),
    ];
    assert_eq!(file.len(), 30 * 7 * 2);
    for layer in 0..30 {
        for (module, a, b) in expected {
            for (factor, shape) in [("lora_A", a), ("lora_B", b)] {
                let name =
                    format!("base_model.model.model.layers.{layer}.{module}.{factor}.weight");
                let t = file.tensor(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(t.shape(), shape, "{name}");
                assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
            }
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(ADAPTER_CONFIG_FILE)).unwrap())
            .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["r"], 8);
    assert_eq!(json["lora_alpha"], 16);
    assert_eq!(json["bias"], "none");
    assert_eq!(json["target_modules"].as_array().unwrap().len(), 7);
}

fn load_err(dir: &Path, base: &ModelConfig) -> String {
    load_adapter(dir, base, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn adapter_for_another_base_names_tensor_shape_and_base_features() {
    let smol = smollm2();
    let dir = tempfile::tempdir().unwrap();
    save_adapter(
        dir.path(),
        &random_adapter(&smol, lora_config(8, &["v_proj"]), 3),
        &smol,
    )
    .unwrap();
    // Same depth, different width (a 64-wide base with 2 KV heads of 16).
    let narrow = ModelConfig {
        hidden_size: 64,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 16,
        intermediate_size: 128,
        ..smol.clone()
    };
    let err = load_adapter(dir.path(), &narrow, &Device::Cpu).unwrap_err();
    match &err {
        ModelError::AdapterShape(mismatch) => {
            let AdapterShapeMismatch {
                tensor,
                found,
                expected,
                in_features,
                out_features,
                ..
            } = mismatch.as_ref();
            assert_eq!(
                tensor,
                "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
            );
            assert_eq!(
                (found.as_slice(), expected.as_slice()),
                (&[8, 576][..], &[8, 64][..])
            );
            assert_eq!((*in_features, *out_features), (64, 32));
        }
        other => panic!("expected AdapterShape, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("[8, 576]") && msg.contains("64 inputs to 32 outputs"),
        "{msg}"
    );

    // Fewer layers than the adapter covers.
    let shallow = ModelConfig {
        num_layers: 12,
        ..smol.clone()
    };
    let msg = load_err(dir.path(), &shallow);
    assert!(
        msg.contains("layers.12.self_attn.v_proj") && msg.contains("12 layers"),
        "{msg}"
    );
}

#[test]
fn rejects_tensors_and_configs_that_do_not_belong() {
    let base = smollm2();
    let adapter = random_adapter(&base, lora_config(2, &["q_proj"]), 4);
    let write = |tensors: Vec<(String, Tensor)>, config: serde_json::Value| {
        let dir = tempfile::tempdir().unwrap();
        candle_core::safetensors::save(
            &tensors
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
            dir.path().join(ADAPTER_WEIGHTS_FILE),
        )
        .unwrap();
        std::fs::write(dir.path().join(ADAPTER_CONFIG_FILE), config.to_string()).unwrap();
        dir
    };
    let good: Vec<(String, Tensor)> = adapter
        .weights
        .iter()
        .flat_map(|(t, w)| {
            [
                (t.peft_tensor_name(LoraFactor::A), w.a.clone()),
                (t.peft_tensor_name(LoraFactor::B), w.b.clone()),
            ]
        })
        .collect();
    let cfg = adapter.config.to_peft_json();
    // The unaltered pieces load, so each failure below is the alteration's doing.
    load_adapter(write(good.clone(), cfg.clone()).path(), &base, &Device::Cpu).unwrap();

    let mut extra = good.clone();
    let lm_head = Tensor::zeros((2, 576), DType::F32, &Device::Cpu).unwrap();
    extra.push(("base_model.model.lm_head.lora_A.weight".into(), lm_head));
    let msg = load_err(write(extra, cfg.clone()).path(), &base);
    assert!(
        msg.contains("`base_model.model.lm_head.lora_A.weight` is not a LoRA factor"),
        "{msg}"
    );

    let no_b: Vec<_> = good
        .iter()
        .filter(|(n, _)| !n.contains("layers.7.self_attn.q_proj.lora_B"))
        .cloned()
        .collect();
    let msg = load_err(write(no_b, cfg.clone()).path(), &base);
    assert!(
        msg.contains("layers.7.self_attn.q_proj.lora_B.weight` is missing"),
        "{msg}"
    );

    let mut only_k = cfg.clone();
    only_k["target_modules"] = serde_json::json!(["k_proj"]);
    let msg = load_err(write(good.clone(), only_k).path(), &base);
    assert!(
        msg.contains("q_proj, which is not in target_modules"),
        "{msg}"
    );

    let mut ia3 = cfg.clone();
    ia3["peft_type"] = "IA3".into();
    let msg = load_err(write(good.clone(), ia3).path(), &base);
    assert!(
        msg.contains("adapter_config.json") && msg.contains("\"IA3\""),
        "{msg}"
    );

    let mut bias = cfg.clone();
    bias["bias"] = "all".into();
    let msg = load_err(write(good.clone(), bias).path(), &base);
    assert!(msg.contains("bias is \"all\""), "{msg}");

    let mut r4 = cfg.clone();
    r4["r"] = 4.into();
    let msg = load_err(write(good.clone(), r4).path(), &base);
    assert!(msg.contains("with r = 4 it must be [4, 576]"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let msg = load_err(empty.path(), &base);
    assert!(msg.contains("adapter_config.json: no such file"), "{msg}");
}

#[test]
fn gate_proj_on_a_gelu_base_is_an_error() {
    let base = smollm2();
    let adapter = random_adapter(&base, lora_config(2, &["gate_proj"]), 5);
    let mut gelu = base.clone();
    gelu.kinds.mlp = crate::config::MlpKind::Gelu;
    let dir = tempfile::tempdir().unwrap();
    let msg = save_adapter(dir.path(), &adapter, &gelu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not have"), "{msg}");
}

#[test]
fn half_precision_adapters_load_as_f32() {
    let base = smollm2();
    let adapter = random_adapter(&base, lora_config(2, &["o_proj"]), 6);
    let dir = tempfile::tempdir().unwrap();
    let tensors: std::collections::HashMap<String, Tensor> = adapter
        .weights
        .iter()
        .flat_map(|(t, w)| {
            [
                (
                    t.peft_tensor_name(LoraFactor::A),
                    w.a.to_dtype(DType::BF16).unwrap(),
                ),
                (
                    t.peft_tensor_name(LoraFactor::B),
                    w.b.to_dtype(DType::F16).unwrap(),
                ),
            ]
        })
        .collect();
    candle_core::safetensors::save(&tensors, dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
    std::fs::write(
        dir.path().join(ADAPTER_CONFIG_FILE),
        adapter.config.to_peft_json().to_string(),
    )
    .unwrap();
    let back = load_adapter(dir.path(), &base, &Device::Cpu).unwrap();
    let t = LoraTarget::new(3, LoraModule::OProj);
    assert_eq!(back.weights[&t].a.dtype(), DType::F32);
    let want = values(&adapter.weights[&t].b);
    let got = values(&back.weights[&t].b);
    let worst = want
        .iter()
        .zip(&got)
        .map(|(w, g)| (w - g).abs())
        .fold(0f32, f32::max);
    assert!(worst > 0.0 && worst < 1e-3, "f16 round trip error {worst}");
}

/// PEFT itself loads kiln's adapter onto the same base: every factor lands where kiln put
/// it, and PEFT's delta weight (its scaling included) equals kiln's `scaling · B·A`.
#[test]
fn peft_loads_kiln_adapter() {
    let Some(py) = kiln_testing::python_importing("peft, torch, transformers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("base");
    crate::tiny::write_tiny_llama(&model_dir, &crate::tiny::TinyLlamaSpec::default()).unwrap();
    let base = crate::loader::load(&model_dir, &Device::Cpu)
        .unwrap()
        .info
        .config;
    let config = LoraConfig {
        use_rslora: true,
        ..lora_config(4, &["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"])
    };
    let adapter = random_adapter(&base, config, 7);
    let adapter_dir = dir.path().join("adapter");
    save_adapter(&adapter_dir, &adapter, &base).unwrap();
    let script = kiln_testing::repo_root().join("scripts/peft_adapter_check.py");
    let out = std::process::Command::new(py)
        .arg(&script)
        .arg(&model_dir)
        .arg(&adapter_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let modules = report["modules"].as_object().unwrap();
    assert_eq!(modules.len(), adapter.weights.len(), "{report}");
    let scaling = adapter.config.scaling();
    for (target, w) in &adapter.weights {
        let key = target.base_weight_name();
        let key = key.trim_end_matches(".weight");
        let m = &modules[key];
        assert_eq!(m["factors_match"], true, "{key}: {m}");
        assert!(
            (m["scaling"].as_f64().unwrap() - scaling).abs() < 1e-12,
            "{key}: {m}"
        );
        let delta = (w.b.matmul(&w.a).unwrap() * scaling).unwrap();
        let sum_abs: f32 = delta.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        let peft_sum = m["delta_abs_sum"].as_f64().unwrap();
        assert!(
            (peft_sum - f64::from(sum_abs)).abs() <= 1e-4 * peft_sum,
            "{key}: PEFT delta |sum| {peft_sum} vs kiln {sum_abs}"
        );
    }
}

//! Scoring one batch in kiln and in Hugging Face transformers (scripts/hf_llama_loss.py), for
//! the tests that check a directory kiln wrote is the same model in transformers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use candle_core::{Device, Tensor};
use kiln_model::{Batch, CausalLM, ForwardContext, LoadedModel, LogitsMode};

/// Mean cross-entropy of `targets` (next-token ids, one row per input row) under kiln's
/// model, with the model's own forward, with the softmax in f64.
pub fn kiln_loss(m: &LoadedModel, inputs: &[Vec<u32>], targets: &[Vec<u32>]) -> f64 {
    let t = inputs[0].len();
    let flat: Vec<u32> = inputs.concat();
    let ids = Tensor::from_vec(flat, (inputs.len(), t), &Device::Cpu).unwrap();
    let batch = Batch {
        input_ids: ids,
        start_pos: 0,
        logits: LogitsMode::All,
    };
    let logits = m
        .model
        .forward(&batch, &mut ForwardContext::training())
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    let mut sum = 0.0f64;
    for (row, tgt) in logits.iter().zip(targets) {
        for (l, &target) in row.iter().zip(tgt) {
            let max = l.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
            let lse = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            sum += lse - l[target as usize] as f64;
        }
    }
    sum / (inputs.len() * t) as f64
}

/// `scripts/hf_llama_loss.py` on the runs: transformers' losses, and its version.
pub fn hf_losses(
    py: &Path,
    runs: &[PathBuf],
    inputs: &[Vec<u32>],
    targets: &[Vec<u32>],
) -> (Vec<f64>, String) {
    let script = super::repo_root().join("scripts/hf_llama_loss.py");
    let req = serde_json::json!({"models": runs, "input_ids": inputs, "targets": targets});
    let mut child = Command::new(py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running hf_llama_loss.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "transformers could not load the run directories: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout));
    });
    let losses = v["losses"]
        .as_array()
        .expect("losses")
        .iter()
        .map(|x| x.as_f64().expect("a loss"))
        .collect();
    (
        losses,
        v["transformers"].as_str().unwrap_or("?").to_string(),
    )
}

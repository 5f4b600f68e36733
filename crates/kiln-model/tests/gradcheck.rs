//! Every training-path layer's backward pass against central finite differences in f64 on
//! tiny shapes: embedding, RoPE (both pairings), RMSNorm, LayerNorm, causal attention (with
//! and without grouped-query heads; the reference formula and the fused training kernel),
//! SwiGLU and GELU MLPs, cross-entropy, and a LoRA-adapted linear layer. The norms, GELU, fused attention and
//! cross-entropy are kiln's own kernels (`kernels::train`), run here in f64.
//!
//! Each check reduces the layer's output to a scalar with fixed random weights R
//! (loss = Σ out ⊙ R, so every output element matters), takes candle's gradient of every
//! input and parameter, and compares it element by element with (f(p + h) - f(p - h)) / 2h.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use kiln_model::config::{RopeConfig, RopeStyle};
use kiln_model::kernels::train;
use kiln_model::layers::{
    scaled_dot_product_attention, Embedding, GeluMlp, LayerNorm, Linear, RmsNorm, RotaryEmbedding,
    SwiGluMlp, Weight,
};
use kiln_model::lora::LoraDelta;

const H: f64 = 1e-5;

/// A deterministic pseudo-random f64 tensor (no global RNG, so failures reproduce).
fn rand(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&rand(shape, seed)).unwrap()
}

/// Compares the autograd gradient of `out()` (reduced with fixed weights) w.r.t. each of
/// `params` against central differences.
fn check(name: &str, params: &[&Var], out: impl Fn() -> Result<Tensor>) {
    let r = rand(out().unwrap().dims(), 999);
    let loss = || -> f64 {
        (out().unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let l = (out().unwrap() * &r).unwrap().sum_all().unwrap();
    let grads = l.backward().unwrap();
    for (pi, p) in params.iter().enumerate() {
        let g = grads
            .get(p.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for parameter {pi}"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let orig = p
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let dims = p.as_tensor().dims().to_vec();
        for i in 0..orig.len() {
            let mut x = orig.clone();
            x[i] = orig[i] + H;
            p.set(&Tensor::from_vec(x.clone(), dims.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            let up = loss();
            x[i] = orig[i] - H;
            p.set(&Tensor::from_vec(x, dims.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            let down = loss();
            let fd = (up - down) / (2.0 * H);
            assert!(
                (g[i] - fd).abs() <= 1e-7 + 1e-5 * fd.abs(),
                "{name}: parameter {pi} element {i}: autograd {} vs finite difference {fd}",
                g[i]
            );
        }
        p.set(&Tensor::from_vec(orig, dims.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn dense(shape: &[usize], seed: u64) -> (Var, Linear) {
    let w = var(shape, seed);
    let lin = Linear::new(Weight::Dense(w.as_tensor().clone()), None).unwrap();
    (w, lin)
}

/// A LoRA-adapted layer: frozen W (no gradient wanted), trainable A and B, and the input;
/// without dropout and with a fixed dropout mask (the mask comes from a seed, so the
/// finite differences see the same one).
#[test]
fn lora_linear_with_and_without_dropout() {
    let w = rand(&[5, 6], 20);
    let (a, b, x) = (var(&[2, 6], 21), var(&[5, 2], 22), var(&[2, 3, 6], 23));
    for (dropout, seed) in [(0.0, 0), (0.3, 42)] {
        check(&format!("lora dropout {dropout}"), &[&x, &a, &b], || {
            let delta = LoraDelta::new(
                a.as_tensor().clone(),
                b.as_tensor().clone(),
                1.7,
                dropout,
                3,
                Arc::new(AtomicU64::new(seed)),
            );
            let lin = Linear::new(Weight::Dense(w.clone()), None)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            lin.with_lora(Arc::new(delta))
                .forward(x.as_tensor())
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        });
    }
}

#[test]
fn embedding() {
    let table = var(&[11, 4], 1);
    let ids = Tensor::new(&[[3u32, 7, 3], [0, 10, 5]], &Device::Cpu).unwrap();
    check("embedding", &[&table], || {
        let e = Embedding::new(Weight::Dense(table.as_tensor().clone()));
        e.forward(&ids)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
}

#[test]
fn rope_both_pairings() {
    for style in [RopeStyle::Halves, RopeStyle::Interleaved] {
        let cfg = RopeConfig {
            theta: 10_000.0,
            style,
            scaling: None,
        };
        let rope = RotaryEmbedding::new(&cfg, 8, 16, &Device::Cpu).unwrap();
        let x = var(&[1, 2, 3, 8], 2);
        check(&format!("rope {style:?}"), &[&x], || {
            rope.apply(x.as_tensor(), 5)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        });
    }
}

#[test]
fn rms_norm() {
    let x = var(&[2, 3, 6], 3);
    let g = var(&[6], 4);
    check("rmsnorm", &[&x, &g], || {
        RmsNorm::new(g.as_tensor().clone(), 1e-5)
            .forward(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
}

#[test]
fn layer_norm() {
    let x = var(&[2, 3, 6], 5);
    let g = var(&[6], 6);
    let b = var(&[6], 7);
    check("layernorm", &[&x, &g, &b], || {
        LayerNorm::new(g.as_tensor().clone(), b.as_tensor().clone(), 1e-5)
            .forward(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
}

#[test]
fn causal_attention_with_and_without_gqa() {
    for (n_head, n_kv, t, total) in [(2, 2, 4, 4), (4, 2, 3, 3), (4, 1, 2, 5)] {
        let q = var(&[1, n_head, t, 4], 8);
        let k = var(&[1, n_kv, total, 4], 9);
        let v = var(&[1, n_kv, total, 4], 10);
        check(
            &format!("attention {n_head}/{n_kv} heads, {t} of {total}"),
            &[&q, &k, &v],
            || {
                scaled_dot_product_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), total - t)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))
            },
        );
    }
}

#[test]
fn swiglu_mlp() {
    let x = var(&[2, 3, 4], 11);
    let (wg, gate) = dense(&[6, 4], 12);
    let (wu, up) = dense(&[6, 4], 13);
    let (wd, down) = dense(&[4, 6], 14);
    let mlp = SwiGluMlp::new(gate, up, down);
    check("swiglu", &[&x, &wg, &wu, &wd], || {
        mlp.forward(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
}

#[test]
fn gelu_mlp() {
    let x = var(&[2, 3, 4], 15);
    let (wu, up) = dense(&[8, 4], 16);
    let (wd, down) = dense(&[4, 8], 17);
    let mlp = GeluMlp::new(up, down);
    check("gelu mlp", &[&x, &wu, &wd], || {
        mlp.forward(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
}

#[test]
fn cross_entropy() {
    let logits = var(&[5, 7], 18);
    let targets = Tensor::new(&[0u32, 6, 3, 3, 1], &Device::Cpu).unwrap();
    check("cross-entropy", &[&logits], || {
        train::cross_entropy(logits.as_tensor(), &targets)?.reshape(1)
    });
    // The fused loss is the composed log-softmax + gather.
    let fused = train::cross_entropy(logits.as_tensor(), &targets).unwrap();
    let composed = candle_nn::loss::cross_entropy(logits.as_tensor(), &targets).unwrap();
    let (a, b) = (
        fused.to_scalar::<f64>().unwrap(),
        composed.to_scalar::<f64>().unwrap(),
    );
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

/// The fused token-major kernel the attention layer trains with: its gradients, and its
/// output against the (b, heads, t, d) reference formula.
#[test]
fn fused_causal_attention_with_and_without_gqa() {
    let d = 4;
    for (n_head, n_kv, t) in [(2, 2, 4), (4, 2, 3), (4, 1, 5)] {
        let q = var(&[2, t, n_head * d], 20);
        let k = var(&[2, t, n_kv * d], 21);
        let v = var(&[2, t, n_kv * d], 22);
        check(
            &format!("fused attention {n_head}/{n_kv} heads, t = {t}"),
            &[&q, &k, &v],
            || train::causal_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), n_head, n_kv),
        );
        let heads = |x: &Var, n: usize| {
            x.as_tensor()
                .reshape((2, t, n, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let want =
            scaled_dot_product_attention(&heads(&q, n_head), &heads(&k, n_kv), &heads(&v, n_kv), 0)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
        let got =
            train::causal_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), n_head, n_kv)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{n_head}/{n_kv}: {a} vs {b}");
        }
    }
}

/// The same kernel over one packed q|k|v tensor (the layer's training path): gradients
/// against finite differences, output equal to the separate-tensor kernel's.
#[test]
fn packed_causal_attention_with_and_without_gqa() {
    let d = 4;
    for (n_head, n_kv, t) in [(2, 2, 4), (4, 2, 3), (4, 1, 5)] {
        let w = (n_head + 2 * n_kv) * d;
        let qkv = var(&[2, t, w], 23);
        check(
            &format!("packed attention {n_head}/{n_kv} heads, t = {t}"),
            &[&qkv],
            || train::causal_attention_packed(qkv.as_tensor(), n_head, n_kv),
        );
        let part = |at: usize, len: usize| qkv.as_tensor().narrow(2, at, len).unwrap();
        let (q, k, v) = (
            part(0, n_head * d),
            part(n_head * d, n_kv * d),
            part((n_head + n_kv) * d, n_kv * d),
        );
        let want = train::causal_attention(&q, &k, &v, n_head, n_kv)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let got = train::causal_attention_packed(qkv.as_tensor(), n_head, n_kv)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(got, want, "{n_head}/{n_kv}");
    }
}

#[test]
fn f64_is_what_the_checks_run_in() {
    // Guards the harness itself: f32 differences at h = 1e-5 would be noise.
    assert_eq!(rand(&[2], 1).dtype(), DType::F64);
}

//! `kiln serve --embedder`: all-MiniLM-L6-v2 at `/v1/embeddings` gives the model's known
//! similarity (cosine 0.755 for the two "man eating" sentences) and the same vectors as
//! kiln-rag's embedder in-process, as floats and as base64.

mod common;

use std::ffi::OsStr;

use common::{asset, free_port, serve_with};
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};

const A: &str = "A man is eating food.";
const B: &str = "A man is eating a piece of bread.";

fn post(port: u16, body: serde_json::Value) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/embeddings"))
        .json(&body)
        .send()
        .and_then(|r| r.error_for_status())
        .expect("POST /v1/embeddings")
        .json()
        .expect("a JSON body")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).expect("a list of floats")
}

#[test]
fn serve_exposes_the_sentence_embedder() {
    let Some(weights) = asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    ) else {
        return;
    };
    let embedder_dir = weights.parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    write_tiny_llama(&model, &TinyLlamaSpec::default()).unwrap();
    let port = free_port();
    let _server = serve_with(
        "tiny",
        &model,
        port,
        &[OsStr::new("--embedder"), embedder_dir.as_os_str()],
    );

    let v = post(
        port,
        serde_json::json!({"model": "all-MiniLM-L6-v2", "input": [A, B]}),
    );
    let (a, b) = (
        floats(&v["data"][0]["embedding"]),
        floats(&v["data"][1]["embedding"]),
    );
    assert_eq!(a.len(), 384);
    let cos = kiln_rag::cosine(&a, &b);
    assert!((cos - 0.755).abs() <= 0.002, "cosine {cos}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 10, "{v}");

    let local = kiln_rag::Embedder::load(&embedder_dir).unwrap();
    let want = local.embed(&[A, B], 2).unwrap();
    for (got, want) in [(&a, &want[0]), (&b, &want[1])] {
        let diff = got
            .iter()
            .zip(want)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-6,
            "served and in-process vectors differ by {diff}"
        );
    }

    let b64 = post(
        port,
        serde_json::json!({"model": "all-MiniLM-L6-v2", "input": A, "encoding_format": "base64"}),
    );
    let encoded = b64["data"][0]["embedding"].as_str().unwrap();
    // The same vector as the float reply, as little-endian f32 bytes in base64.
    assert_eq!(encoded, kiln_serve::routes::embeddings::base64_f32(&a));
}

//! `/v1/embeddings` on the wire: float and base64 vectors in input order, usage in the
//! embedding model's tokens, the model list, and the errors (unknown model, token-id input,
//! empty input, a width the model cannot give, a server without an embedder).

mod common;

use std::sync::Arc;

use common::{FakeEmbedder, TestServer};
use kiln_engine::EngineConfig;
use kiln_serve::ServeOptions;
use serde_json::json;

async fn server() -> TestServer {
    TestServer::start_with_embedder(
        &["tiny"],
        EngineConfig::default(),
        ServeOptions::default(),
        Some(Arc::new(FakeEmbedder)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_come_back_in_order_as_floats_or_base64() {
    let s = server().await;
    let texts = ["abc", "a longer text"];
    let (status, v) = s
        .post_json(
            "/v1/embeddings",
            &json!({"model": "fake-embedder", "input": texts}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "fake-embedder");
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    assert_eq!(v["usage"]["prompt_tokens"], chars);
    assert_eq!(v["usage"]["total_tokens"], chars);
    for (i, t) in texts.iter().enumerate() {
        let d = &v["data"][i];
        assert_eq!(d["index"], i);
        assert_eq!(d["object"], "embedding");
        let n = t.chars().count() as f32;
        let e: Vec<f32> = serde_json::from_value(d["embedding"].clone()).unwrap();
        assert_eq!(e, [n.cos(), n.sin(), 0.0, 0.0]);
    }

    let (status, b) = s
        .post_json(
            "/v1/embeddings",
            &json!({"model": "fake-embedder", "input": "abc", "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let encoded = b["data"][0]["embedding"].as_str().unwrap();
    let three = 3.0f32;
    let want = [three.cos(), three.sin(), 0.0, 0.0];
    assert_eq!(encoded, kiln_serve::routes::embeddings::base64_f32(&want));
    // 16 bytes of f32s in base64.
    assert_eq!(encoded.len(), 24);

    // The model's own width is accepted.
    let (status, same_width) = s
        .post_json(
            "/v1/embeddings",
            &json!({"model": "fake-embedder", "input": "x", "dimensions": 4}),
        )
        .await;
    assert_eq!(status, 200, "{same_width}");
    let list: serde_json::Value = s
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"fake-embedder") && ids.contains(&"tiny"),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_what_is_wrong() {
    let s = server().await;
    let cases = [
        (json!({"model": "tiny", "input": "x"}), 404, None),
        (
            json!({"model": "fake-embedder", "input": [1, 2, 3]}),
            400,
            Some("input"),
        ),
        (
            json!({"model": "fake-embedder", "input": []}),
            400,
            Some("input"),
        ),
        (
            json!({"model": "fake-embedder", "input": ["ok", ""]}),
            400,
            Some("input[1]"),
        ),
        (
            json!({"model": "fake-embedder", "input": "x", "dimensions": 2}),
            400,
            Some("dimensions"),
        ),
        (
            json!({"model": "fake-embedder", "input": "x", "encoding_format": "int8"}),
            400,
            Some("encoding_format"),
        ),
        (json!({"model": "fake-embedder"}), 400, Some("input")),
    ];
    for (body, want, param) in cases {
        let (status, v) = s.post_json("/v1/embeddings", &body).await;
        assert_eq!(status, want, "{body} -> {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{body} -> {v}");
        }
    }

    let plain = TestServer::default().await;
    let (status, v) = plain
        .post_json("/v1/embeddings", &json!({"model": "x", "input": "x"}))
        .await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--embedder"));
}

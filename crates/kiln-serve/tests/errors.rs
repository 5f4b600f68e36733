//! Bad requests get OpenAI's error shape with the right status and the parameter named;
//! models, health, auth and routing.

mod common;

use common::{assert_error, TestServer, CONTEXT};
use kiln_engine::EngineConfig;
use kiln_serve::ServeOptions;
use serde_json::{json, Value};

fn chat(extra: Value) -> Value {
    let mut v = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_400_naming_the_parameter() {
    let s = TestServer::default().await;
    // Malformed JSON.
    let resp = s
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body("{\"model\": \"tiny\", \"messages\": [")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let e = assert_error(status, &body, 400);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("JSON"), "{e}");

    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": "tiny", "messages": "hi"}), "messages"),
        (json!({"model": "tiny"}), "messages"),
        (chat(json!({"messages": []})), "messages"),
        (
            chat(json!({"messages": [{"role": "user", "content": 3}]})),
            "messages[0].content",
        ),
        (chat(json!({"max_tokens": "ten"})), "max_tokens"),
        (chat(json!({"max_tokens": -5})), "max_tokens"),
        (chat(json!({"max_tokens": 0})), "max_tokens"),
        (
            chat(json!({"max_tokens": 1_000_000_000_000i64})),
            "max_tokens",
        ),
        (chat(json!({"max_tokens": 1e40})), "max_tokens"),
        (
            chat(json!({"max_completion_tokens": -1})),
            "max_completion_tokens",
        ),
        (chat(json!({"temperature": 7})), "temperature"),
        (chat(json!({"temperature": "hot"})), "temperature"),
        (chat(json!({"top_p": 1.5})), "top_p"),
        (chat(json!({"n": 0})), "n"),
        (chat(json!({"stop": 5})), "stop"),
        (chat(json!({"top_logprobs": 3})), "top_logprobs"),
        (
            chat(json!({"logprobs": true, "top_logprobs": 99})),
            "top_logprobs",
        ),
        (
            chat(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
            "messages[0].content",
        ),
    ];
    for (body, param) in cases {
        let (status, v) = s.post_json("/v1/chat/completions", &body).await;
        let e = assert_error(status, &v, 400);
        assert_eq!(e["param"], param, "{body} -> {v}");
    }
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": "tiny"}), "prompt"),
        (json!({"model": "tiny", "prompt": ""}), "prompt"),
        (json!({"model": "tiny", "prompt": []}), "prompt"),
        (json!({"model": "tiny", "prompt": [99999]}), "prompt"),
        (json!({"model": "tiny", "prompt": {"a": 1}}), "prompt"),
        (
            json!({"model": "tiny", "prompt": "x", "max_tokens": -1}),
            "max_tokens",
        ),
        (
            json!({"model": "tiny", "prompt": "x", "logprobs": 50}),
            "logprobs",
        ),
        (
            json!({"model": "tiny", "prompt": "x", "echo": "yes"}),
            "echo",
        ),
    ];
    for (body, param) in cases {
        let (status, v) = s.post_json("/v1/completions", &body).await;
        let e = assert_error(status, &v, 400);
        assert_eq!(e["param"], param, "{body} -> {v}");
    }
    // The server still serves.
    let (status, _) = s
        .post_json("/v1/chat/completions", &chat(json!({"max_tokens": 2})))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompts_over_the_context_state_both_limits() {
    let s = TestServer::default().await;
    let long = "a".repeat(CONTEXT + 40);
    let (status, v) = s
        .post_json(
            "/v1/completions",
            &json!({"prompt": long, "max_tokens": 10}),
        )
        .await;
    let e = assert_error(status, &v, 400);
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "prompt");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains(&CONTEXT.to_string()), "{msg}");
    assert!(msg.contains(&(CONTEXT + 40).to_string()), "{msg}");
    assert!(msg.contains(&(CONTEXT + 50).to_string()), "{msg}");

    // A prompt that fits with a completion that does not.
    let (status, v) = s
        .post_json(
            "/v1/completions",
            &json!({"prompt": "a".repeat(200), "max_tokens": 100}),
        )
        .await;
    let e = assert_error(status, &v, 400);
    assert_eq!(e["code"], "context_length_exceeded");
    assert!(e["message"].as_str().unwrap().contains("300"), "{e}");

    let (status, v) = s
        .post_json(
            "/v1/chat/completions",
            &chat(json!({"messages": [{"role": "user", "content": long}]})),
        )
        .await;
    let e = assert_error(status, &v, 400);
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str()),
        (Some("context_length_exceeded"), Some("messages"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_health_and_unknown_names() {
    let s = TestServer::default().await;
    let v: Value = s
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "tiny");
    assert_eq!(v["data"][0]["object"], "model");
    let resp = s.get("/v1/models/tiny").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.get("/v1/models/nope").send().await.unwrap();
    let status = resp.status().as_u16();
    assert_error(status, &resp.json().await.unwrap(), 404);

    let resp = s.get("/health").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "ok");

    let (status, v) = s
        .post_json("/v1/chat/completions", &chat(json!({"model": "gpt-9"})))
        .await;
    let e = assert_error(status, &v, 404);
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str()),
        (Some("model_not_found"), Some("model"))
    );
    let (status, v) = s
        .post_json("/v1/completions", &json!({"model": "gpt-9", "prompt": "x"}))
        .await;
    assert_error(status, &v, 404);
    let resp = s.get("/v2/nothing").send().await.unwrap();
    let status = resp.status().as_u16();
    assert_error(status, &resp.json().await.unwrap(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_keys_are_required_when_configured() {
    let opts = ServeOptions {
        api_keys: vec!["sk-one".into(), "sk-two".into()],
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    let body = chat(json!({"max_tokens": 2}));
    for key in [None, Some("sk-wrong"), Some("")] {
        let mut req = s.post("/v1/chat/completions").json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let e = assert_error(status, &resp.json().await.unwrap(), 401);
        assert_eq!(e["type"], "authentication_error");
    }
    let resp = s.get("/v1/models").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    for key in ["sk-one", "sk-two"] {
        let resp = s
            .post("/v1/chat/completions")
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Health and metrics stay open (probes and scrapers carry no key).
    assert_eq!(s.get("/health").send().await.unwrap().status(), 200);
    assert_eq!(s.get("/metrics").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_over_the_limit_are_413() {
    let opts = ServeOptions {
        max_body_bytes: 2048,
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    let big = chat(json!({"messages": [{"role": "user", "content": "x".repeat(4096)}]}));
    let resp = s
        .post("/v1/chat/completions")
        .json(&big)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let e = assert_error(status, &resp.json().await.unwrap(), 413);
    assert!(e["message"].as_str().unwrap().contains("2048"), "{e}");
    let (status, _) = s
        .post_json("/v1/chat/completions", &chat(json!({"max_tokens": 2})))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_routed_by_model_name() {
    let s = TestServer::start_models(
        &["small", "other"],
        EngineConfig::default(),
        ServeOptions::default(),
    )
    .await;
    let v: Value = s
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["small", "other"]);
    for (i, name) in ["small", "other"].iter().enumerate() {
        let (status, v) = s
            .post_json(
                "/v1/completions",
                &json!({"model": name, "prompt": "hi", "max_tokens": 3, "ignore_eos": true}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["model"], *name);
        // Served by its own engine: the other one has generated nothing (yet).
        let st = s.wait_idle_all().await;
        assert!(st[i].generated_tokens >= 3, "{name}: {st:?}");
        if i == 0 {
            assert_eq!(st[1].generated_tokens, 0, "{st:?}");
        }
    }
    let (status, v) = s
        .post_json("/v1/completions", &json!({"prompt": "hi"}))
        .await;
    let e = assert_error(status, &v, 400);
    assert_eq!(
        e["param"], "model",
        "several models: the request must name one"
    );
    let (status, v) = s
        .post_json("/v1/completions", &json!({"model": "tiny", "prompt": "hi"}))
        .await;
    assert_error(status, &v, 404);
}

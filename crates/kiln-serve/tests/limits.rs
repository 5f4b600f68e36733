//! Rate limits (429 + Retry-After), a full engine queue (503), request timeouts.

mod common;

use std::time::Duration;

use common::{assert_error, sse_data, TestServer};
use kiln_engine::EngineConfig;
use kiln_serve::{RateLimits, ServeOptions};
use serde_json::{json, Value};

fn completion(max_tokens: usize) -> Value {
    json!({"model": "tiny", "prompt": "Hello", "max_tokens": max_tokens, "temperature": 0,
           "ignore_eos": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_answer_429_with_retry_after() {
    let opts = ServeOptions {
        api_keys: vec!["a".into(), "b".into()],
        rate_limits: RateLimits {
            requests_per_minute: Some(2),
            tokens_per_minute: None,
        },
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    let send = |key: &'static str| {
        s.post("/v1/completions")
            .bearer_auth(key)
            .json(&completion(2))
            .send()
    };
    assert_eq!(send("a").await.unwrap().status(), 200);
    assert_eq!(send("a").await.unwrap().status(), 200);
    let resp = send("a").await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let e = assert_error(429, &resp.json().await.unwrap(), 429);
    assert_eq!(e["type"], "rate_limit_error");
    // Another key has its own bucket.
    assert_eq!(send("b").await.unwrap().status(), 200);

    // Tokens per minute: prompt plus max_tokens are charged.
    let opts = ServeOptions {
        rate_limits: RateLimits {
            requests_per_minute: None,
            tokens_per_minute: Some(100),
        },
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    let (status, _) = s.post_json("/v1/completions", &completion(60)).await;
    assert_eq!(status, 200);
    let resp = s
        .post("/v1/completions")
        .json(&completion(60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let (status, _) = s.post_json("/v1/completions", &completion(2)).await;
    assert_eq!(status, 200, "a small request still fits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503() {
    let config = EngineConfig {
        max_queue: 1,
        max_num_seqs: 1,
        ..EngineConfig::default()
    };
    let s = TestServer::start(config, ServeOptions::default()).await;
    let mut saw_503 = false;
    for _ in 0..5 {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let req = s.post("/v1/completions").json(&completion(200));
                tokio::spawn(async move {
                    let resp = req.send().await.unwrap();
                    let status = resp.status().as_u16();
                    let retry = resp.headers().contains_key("retry-after");
                    (status, retry, resp.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut codes = vec![];
        for t in tasks {
            let (status, retry, body) = t.await.unwrap();
            if status == 503 {
                let e = assert_error(status, &body, 503);
                assert!(e["message"].as_str().unwrap().contains("queue"), "{e}");
                assert!(retry);
            } else {
                assert_eq!(status, 200, "{body}");
            }
            codes.push(status);
        }
        assert!(codes.contains(&200));
        if codes.contains(&503) {
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "24 concurrent requests never filled a queue of 1");
    let st = s.wait_idle().await;
    assert_eq!((st.waiting, st.running, st.kv_blocks_used), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_over_the_timeout_are_cancelled() {
    let opts = ServeOptions {
        request_timeout: Some(Duration::from_millis(50)),
        ..ServeOptions::default()
    };
    let s = TestServer::start(EngineConfig::default(), opts).await;
    // 64 choices of 200 tokens cannot finish in 50 ms.
    let mut req = completion(200);
    req["n"] = json!(64);
    let (status, v) = s.post_json("/v1/completions", &req).await;
    let e = assert_error(status, &v, 504);
    assert_eq!(e["code"], "timeout");

    req["stream"] = json!(true);
    let resp = s.post("/v1/completions").json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let err: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "timeout");

    let st = s.wait_idle().await;
    assert_eq!((st.waiting, st.running, st.kv_blocks_used), (0, 0, 0));
    assert!(
        st.generated_tokens < 2 * 64 * 200,
        "timed-out requests were not cancelled"
    );
}

//! Clients that go away mid-stream cancel their requests (the engine ends up idle, its
//! KV blocks free), and a graceful shutdown finishes streams already running.

mod common;

use common::{sse_data, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

fn long_stream() -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story"}],
           "max_tokens": 200, "temperature": 0.8, "ignore_eos": true, "stream": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_clients_disconnecting_mid_stream_leave_the_engine_idle() {
    let s = TestServer::default().await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            // Each client its own connection, dropped with the response.
            let client = reqwest::Client::new();
            let req = client
                .post(format!("{}/v1/chat/completions", s.url))
                .json(&long_stream());
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), 200);
                let mut body = resp.bytes_stream();
                // Some leave after the role chunk, some after a few tokens.
                let wanted = 1 + i % 4;
                let mut got = 0;
                while got < wanted {
                    match body.next().await {
                        Some(Ok(_)) => got += 1,
                        _ => break,
                    }
                }
                drop(body);
                drop(client);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let st = s.wait_idle().await;
    assert_eq!(
        (st.waiting, st.running, st.kv_blocks_used),
        (0, 0, 0),
        "the engine still holds requests of departed clients"
    );
    // Cancelled, not run to the end: far fewer than 100 x 200 tokens were generated.
    eprintln!("generated {} of 20000 tokens", st.generated_tokens);
    assert!(st.generated_tokens < 100 * 200 / 4, "{st:?}");
    let (status, v) = s
        .post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_in_flight_streams() {
    let mut s = TestServer::default().await;
    let mut req = long_stream();
    req["max_tokens"] = json!(60);
    req["temperature"] = json!(0);
    let resp = s
        .post("/v1/chat/completions")
        .json(&req)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    s.begin_shutdown();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]", "the stream was cut: {text}");
    let finish: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    s.join().await;
    assert!(
        reqwest::get(format!("{}/health", s.url)).await.is_err(),
        "the listener is closed"
    );
    assert!(s
        .engine
        .submit(kiln_engine::EngineRequest::greedy(vec![1], 1))
        .is_err());
}

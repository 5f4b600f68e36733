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

/// One abusive request of kind `i % 8`: most are refused with a 4xx, some stream and leave.
async fn abuse(client: reqwest::Client, url: String, i: usize) -> u16 {
    let chat = format!("{url}/v1/chat/completions");
    let body = match i % 8 {
        0 => return send_raw(&client, &chat, "{\"messages\": [").await,
        1 => json!({"messages": "not a list"}),
        2 => json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}),
        3 => json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1u64 << 40}),
        4 => json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        5 => json!({"messages": []}),
        6 => json!({"messages": [{"role": "user", "content": "word ".repeat(2000)}]}),
        _ => {
            let resp = client.post(&chat).json(&long_stream()).send().await;
            let Ok(resp) = resp else { return 0 };
            let status = resp.status().as_u16();
            let mut body = resp.bytes_stream();
            let _ = body.next().await; // leave after the first chunk
            return status;
        }
    };
    match client.post(&chat).json(&body).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn send_raw(client: &reqwest::Client, url: &str, body: &'static str) -> u16 {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    r.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_bad_or_abandoned_requests_leave_every_block_free() {
    let s = TestServer::default().await;
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..10 {
        let tasks: Vec<_> = (0..100)
            .map(|j| {
                tokio::spawn(abuse(
                    reqwest::Client::new(),
                    s.url.clone(),
                    round * 100 + j,
                ))
            })
            .collect();
        for t in tasks {
            *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
        }
    }
    // Streams answer 200; every other kind is a client error, never a 5xx or a dropped
    // connection.
    assert_eq!(statuses.get(&200), Some(&125), "{statuses:?}");
    assert_eq!(statuses.values().sum::<i32>(), 1000);
    assert!(
        statuses
            .keys()
            .all(|&c| c == 200 || (400..500).contains(&c)),
        "{statuses:?}"
    );
    let st = s.wait_idle().await;
    assert_eq!(
        (st.waiting, st.running, st.kv_blocks_used),
        (0, 0, 0),
        "{st:?}"
    );
    let (status, v) = s
        .post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
        )
        .await;
    assert_eq!(status, 200, "the server still serves: {v}");
}

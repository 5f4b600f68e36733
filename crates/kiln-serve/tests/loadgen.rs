//! The load generator against a fake OpenAI-compatible server in-process: a canned SSE
//! stream with known delays, so counts, rates, TTFT, failure counting and the time bound
//! can be checked exactly.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kiln_serve::loadgen::{
    checked_url, prefix_cache_probe, run_load, Client, ClientConfig, Endpoint, LoadConfig,
};
use serde_json::{json, Value};

/// How the fake behaves. TTFT is `first_delay`, or `cached_delay` when the prompt's first
/// 20 words were seen before (a stand-in for a prefix cache).
#[derive(Clone)]
struct Fake {
    first_delay: Duration,
    cached_delay: Duration,
    token_delay: Duration,
    /// Every n-th request (1-based) answers HTTP 500.
    fail_every: Option<usize>,
    count: Arc<AtomicUsize>,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl Fake {
    fn new(first_ms: u64, token_ms: u64) -> Fake {
        Fake {
            first_delay: Duration::from_millis(first_ms),
            cached_delay: Duration::from_millis(first_ms),
            token_delay: Duration::from_millis(token_ms),
            fail_every: None,
            count: Arc::new(AtomicUsize::new(0)),
            seen: Arc::default(),
        }
    }
}

fn sse(v: &Value) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(format!("data: {v}\n\n")))
}

async fn completions(State(f): State<Fake>, Json(body): Json<Value>) -> Response {
    let n = f.count.fetch_add(1, Ordering::SeqCst) + 1;
    if f.fail_every.is_some_and(|k| n % k == 0) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    assert_eq!(body["stream"], true);
    assert_eq!(body["ignore_eos"], true);
    let tokens = body["max_tokens"].as_u64().unwrap();
    let prompt = body["prompt"].as_str().unwrap().to_string();
    let head: String = prompt.split(' ').take(20).collect::<Vec<_>>().join(" ");
    let cached = !f.seen.lock().unwrap().insert(head);
    let first = if cached {
        f.cached_delay
    } else {
        f.first_delay
    };
    let prompt_tokens = prompt.split(' ').count();
    let token_delay = f.token_delay;
    let stream = futures::stream::unfold(0u64, move |i| async move {
        let chunk = match i {
            i if i < tokens => {
                tokio::time::sleep(if i == 0 { first } else { token_delay }).await;
                json!({"choices": [{"index": 0, "text": format!(" t{i}"), "finish_reason": null}]})
            }
            i if i == tokens => json!({"choices": [], "usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": tokens}}),
            i if i == tokens + 1 => return Some((Ok(Bytes::from("data: [DONE]\n\n")), i + 1)),
            _ => return None,
        };
        Some((sse(&chunk), i + 1))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Serves `fake` on 127.0.0.1:0 and returns a client for it.
async fn start(fake: Fake, gen_tokens: usize) -> Client {
    let app = Router::new()
        .route("/v1/completions", post(completions))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = checked_url(&format!("http://{addr}"), Endpoint::Completions, false).unwrap();
    Client::new(ClientConfig {
        url,
        endpoint: Endpoint::Completions,
        model: "fake".into(),
        api_key: None,
        gen_tokens,
        eos_hints: true,
    })
    .unwrap()
}

fn config(concurrency: &[usize], requests: usize, max_ms: u64) -> LoadConfig {
    LoadConfig {
        concurrency: concurrency.to_vec(),
        requests,
        prompt_tokens: 32,
        shared_prefix_tokens: 0,
        max_duration: Duration::from_millis(max_ms),
        seed: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_rates_and_ttft() {
    let client = start(Fake::new(80, 5), 10).await;
    let mut seen = vec![];
    let r = run_load(&client, &config(&[1, 4], 8, 60_000), |l| {
        seen.push(l.concurrency)
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![1, 4]);
    assert!(!r.time_bound_hit);
    for l in &r.levels {
        assert_eq!((l.ok, l.failed, l.cancelled, l.not_started), (8, 0, 0, 0));
        assert_eq!(l.completion_tokens, 80);
        assert_eq!(
            (l.completion_tokens_min, l.completion_tokens_max),
            (Some(10), Some(10))
        );
        assert_eq!(l.mean_prompt_tokens, Some(32.0));
        assert!(l.output_tok_s > 0.0 && l.requests_per_s > 0.0);
        let ttft = l.ttft_ms.unwrap();
        assert!(ttft.p50 >= 80.0 && ttft.p50 < 200.0, "TTFT {ttft:?}");
        let itl = l.itl_ms.unwrap();
        assert!(itl.p50 >= 5.0 && itl.p50 < 50.0, "ITL {itl:?}");
    }
    // Each request takes ~125 ms: one at a time ~1 s for 8, four at a time ~2 rounds.
    let (one, four) = (&r.levels[0], &r.levels[1]);
    assert!(
        four.requests_per_s > 2.0 * one.requests_per_s,
        "{one:?}\n{four:?}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["levels"][1]["concurrency"], 4);
    assert!(json["levels"][0]["ttft_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_counted_not_fatal() {
    let mut fake = Fake::new(1, 1);
    fake.fail_every = Some(3);
    let client = start(fake, 4).await;
    let r = run_load(&client, &config(&[2], 9, 60_000), |_| {})
        .await
        .unwrap();
    let l = &r.levels[0];
    assert_eq!((l.ok, l.failed), (6, 3));
    assert!(
        l.errors[0].contains("500") && l.errors[0].contains("boom"),
        "{:?}",
        l.errors
    );
    assert_eq!(l.completion_tokens, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bound_cancels_in_flight_and_stops_new_requests() {
    // 50 tokens 100 ms apart: 5 s a request, far past the 400 ms bound.
    let client = start(Fake::new(10, 100), 50).await;
    let started = std::time::Instant::now();
    let r = run_load(&client, &config(&[2, 4], 10, 400), |_| {})
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(r.time_bound_hit);
    assert_eq!(r.levels.len(), 1, "the second level must not start");
    let l = &r.levels[0];
    assert_eq!((l.ok, l.failed, l.cancelled, l.not_started), (0, 0, 2, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = checked_url(&format!("http://{addr}"), Endpoint::Completions, false).unwrap();
    let client = Client::new(ClientConfig {
        url,
        endpoint: Endpoint::Completions,
        model: "none".into(),
        api_key: None,
        gen_tokens: 4,
        eos_hints: true,
    })
    .unwrap();
    let r = run_load(&client, &config(&[1], 3, 10_000), |_| {})
        .await
        .unwrap();
    assert_eq!((r.levels[0].ok, r.levels[0].failed), (0, 3));
    assert!(r.levels[0].ttft_ms.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_probe_sees_the_cache() {
    let mut fake = Fake::new(150, 1);
    fake.cached_delay = Duration::from_millis(20);
    let client = start(fake, 2).await;
    let p = prefix_cache_probe(&client, 60, 40, 3, 5).await.unwrap();
    assert!(p.uncached_ttft_ms >= 150.0, "{p:?}");
    assert_eq!(p.cached_ttft_ms.len(), 3);
    assert!(p.cached.p50 < 100.0 && p.speedup > 1.5, "{p:?}");
    assert_eq!(p.reported_prompt_tokens, Some(60));
}

/// A server that drops its first connection unanswered (as a server does when it closes a
/// keep-alive connection the client is reusing), then answers on the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_answering_is_retried_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0.. {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            if n == 0 {
                continue; // dropped: closed without a response
            }
            let chunk = json!({"choices": [{"index": 0, "text": " hi", "finish_reason": "length"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                 data: {chunk}\n\ndata: [DONE]\n\n"
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    let url = checked_url(&format!("http://{addr}"), Endpoint::Completions, false).unwrap();
    let client = Client::new(ClientConfig {
        url,
        endpoint: Endpoint::Completions,
        model: "m".into(),
        api_key: None,
        gen_tokens: 1,
        eos_hints: true,
    })
    .unwrap();
    let r = client.complete("a b c").await.unwrap();
    assert_eq!((r.completion_tokens, r.prompt_tokens), (1, Some(3)));
}

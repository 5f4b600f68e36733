//! `/metrics` exposes every series in Prometheus text format, and the counts move.

mod common;

use common::TestServer;
use serde_json::json;

/// The value of the first sample line starting with `series` (name plus labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_cover_the_series_and_move() {
    let s = TestServer::default().await;
    let scrape = || async {
        let resp = s.get("/metrics").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        resp.text().await.unwrap()
    };
    let before = scrape().await;
    for name in [
        "kiln_http_requests_total",
        "kiln_num_requests_waiting",
        "kiln_num_requests_running",
        "kiln_kv_cache_blocks_used",
        "kiln_kv_cache_blocks_total",
        "kiln_prefix_cache_hit_rate",
        "kiln_time_to_first_token_seconds",
        "kiln_inter_token_latency_seconds",
        "kiln_e2e_request_latency_seconds",
        "kiln_prompt_tokens_total",
        "kiln_generation_tokens_total",
    ] {
        assert!(
            before.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{before}"
        );
    }
    let m = "{model=\"tiny\"}";
    assert!(sample(&before, &format!("kiln_kv_cache_blocks_total{m}")) > 0.0);
    assert_eq!(
        sample(&before, &format!("kiln_generation_tokens_total{m}")),
        0.0
    );

    let req = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
                     "temperature": 0, "ignore_eos": true, "stream": true});
    let resp = s
        .post("/v1/chat/completions")
        .json(&req)
        .send()
        .await
        .unwrap();
    resp.text().await.unwrap();
    let req = json!({"prompt": "abc", "max_tokens": 4, "ignore_eos": true});
    let (status, _) = s.post_json("/v1/completions", &req).await;
    assert_eq!(status, 200);
    s.post_json("/v1/completions", &json!({"model": "nope", "prompt": "x"}))
        .await;

    let after = scrape().await;
    assert_eq!(
        sample(&after, &format!("kiln_generation_tokens_total{m}")),
        9.0
    );
    assert!(sample(&after, &format!("kiln_prompt_tokens_total{m}")) >= 3.0 + 10.0);
    assert_eq!(
        sample(
            &after,
            &format!("kiln_time_to_first_token_seconds_count{m}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            &format!("kiln_e2e_request_latency_seconds_count{m}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            &format!("kiln_inter_token_latency_seconds_count{m}")
        ),
        4.0 + 3.0
    );
    assert!(sample(&after, "kiln_http_requests_total{code=\"200\"}") >= 3.0);
    assert_eq!(
        sample(&after, "kiln_http_requests_total{code=\"404\"}"),
        1.0
    );
    assert_eq!(
        sample(&after, &format!("kiln_num_requests_waiting{m}")),
        0.0
    );
}

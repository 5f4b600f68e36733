//! Every API request leaves one structured log line: id, model, status, prompt and
//! completion tokens, latency, outcome.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::TestServer;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of `key=` in a logfmt-style line (string values lose their quotes).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split(' ').next().map(|v| v.trim_matches('"'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_log_line_per_request_with_its_fields() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("kiln_serve::request=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let s = TestServer::default().await;
    let ok = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 4, "temperature": 0, "ignore_eos": true});
    let (status, body) = s.post_json("/v1/chat/completions", &ok).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = s
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "nope", "messages": []}),
        )
        .await;
    assert_eq!(status, 404);
    // The line is written when the last holder of the request's record lets go.
    let mut lines = vec![];
    for _ in 0..100 {
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        lines = text
            .lines()
            .filter(|l| l.contains("kiln_serve::request"))
            .map(str::to_string)
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let done = &lines[0];
    assert_eq!(field(done, "model"), Some("tiny"), "{done}");
    assert_eq!(field(done, "status"), Some("200"), "{done}");
    assert_eq!(field(done, "completion_tokens"), Some("4"), "{done}");
    assert!(
        field(done, "prompt_tokens")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(field(done, "latency_ms").unwrap().parse::<f64>().unwrap() > 0.0);
    assert!(field(done, "id").is_some_and(|id| !id.is_empty()));
    assert_eq!(field(done, "outcome"), Some("completed"), "{done}");
    let refused = &lines[1];
    assert_eq!(field(refused, "status"), Some("404"), "{refused}");
    assert_eq!(field(refused, "outcome"), Some("rejected"), "{refused}");
}

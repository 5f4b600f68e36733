//! `/v1/completions` on the tiny model: echo with prompt scoring (legacy logprobs shape),
//! prompt lists, streaming.

mod common;

use common::{sse_data, TestServer};
use serde_json::{json, Value};

fn check_prompt_scores(lp: &Value, prompt: &str, extra: usize) {
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let scores = lp["token_logprobs"].as_array().unwrap();
    let offsets = lp["text_offset"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        prompt.len() + extra,
        "byte-level: a token per byte"
    );
    assert_eq!(tokens[..prompt.len()].concat(), prompt);
    assert_eq!(scores.len(), tokens.len());
    assert_eq!(offsets.len(), tokens.len());
    assert!(scores[0].is_null(), "nothing predicts the first token");
    assert!(lp["top_logprobs"][0].is_null());
    for s in &scores[1..] {
        let s = s.as_f64().unwrap();
        assert!(s.is_finite() && s <= 0.0, "{s}");
    }
    assert_eq!(offsets[0], 0);
    assert_eq!(offsets[1], tokens[0].chars().count());
    assert!(lp["top_logprobs"][1].as_object().unwrap().len() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_with_logprobs_scores_the_prompt() {
    let s = TestServer::default().await;
    let prompt = "The quick brown fox";
    let req = json!({"model": "tiny", "prompt": prompt, "echo": true, "logprobs": 2,
                     "max_tokens": 0, "temperature": 0});
    let (status, v) = s.post_json("/v1/completions", &req).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    let c = &v["choices"][0];
    assert_eq!(c["text"], prompt);
    check_prompt_scores(&c["logprobs"], prompt, 0);
    assert_eq!(v["usage"]["completion_tokens"], 0);
    assert_eq!(v["usage"]["prompt_tokens"], prompt.len());

    // With generated tokens: the prompt's scores, then the completion's.
    let req = json!({"model": "tiny", "prompt": prompt, "echo": true, "logprobs": 1,
                     "max_tokens": 4, "temperature": 0, "ignore_eos": true});
    let (_, v) = s.post_json("/v1/completions", &req).await;
    let c = &v["choices"][0];
    assert!(c["text"].as_str().unwrap().starts_with(prompt));
    check_prompt_scores(&c["logprobs"], prompt, 4);
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompt_lists_give_choices_in_order() {
    let s = TestServer::default().await;
    let one = |p: &str| json!({"prompt": p, "max_tokens": 5, "temperature": 0, "ignore_eos": true});
    let (_, a) = s.post_json("/v1/completions", &one("alpha")).await;
    let (_, b) = s.post_json("/v1/completions", &one("beta beta")).await;
    // No model field: the server has one.
    let req = json!({"prompt": ["alpha", "beta beta"], "n": 2, "max_tokens": 5,
                     "temperature": 0, "ignore_eos": true});
    let (status, v) = s.post_json("/v1/completions", &req).await;
    assert_eq!(status, 200, "{v}");
    let ch = v["choices"].as_array().unwrap();
    assert_eq!(ch.len(), 4);
    for (i, c) in ch.iter().enumerate() {
        assert_eq!(c["index"], i);
        let want = if i < 2 { &a } else { &b };
        assert_eq!(c["text"], want["choices"][0]["text"]);
    }
    assert_eq!(v["usage"]["prompt_tokens"], 5 + 9);
    assert_eq!(v["usage"]["completion_tokens"], 20);
    // Token-id prompts work too.
    let req = json!({"prompt": [97, 108, 112, 104, 97], "max_tokens": 5, "temperature": 0,
                     "ignore_eos": true});
    let (_, t) = s.post_json("/v1/completions", &req).await;
    assert_eq!(t["choices"][0]["text"], a["choices"][0]["text"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completion_stream_echoes_then_streams() {
    let s = TestServer::default().await;
    let prompt = "Once upon";
    let base = json!({"prompt": prompt, "max_tokens": 6, "temperature": 0, "ignore_eos": true});
    let (_, full) = s.post_json("/v1/completions", &base).await;
    let mut req = base.clone();
    req["stream"] = json!(true);
    req["echo"] = json!(true);
    req["logprobs"] = json!(0);
    let resp = s.post("/v1/completions").json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    let want = format!("{prompt}{}", full["choices"][0]["text"].as_str().unwrap());
    assert_eq!(text, want);
    assert!(chunks[0]["choices"][0]["logprobs"]["token_logprobs"][0].is_null());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    let n_tokens: usize = chunks
        .iter()
        .map(|c| {
            c["choices"][0]["logprobs"]["tokens"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(n_tokens, prompt.len() + 6);
}

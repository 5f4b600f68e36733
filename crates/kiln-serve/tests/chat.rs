//! `/v1/chat/completions` on the tiny model: JSON and streamed responses agree, `n` and
//! seeds, logprobs, usage.

mod common;

use common::{sse_data, TestServer};
use serde_json::{json, Value};

fn greedy_chat(max_tokens: usize) -> Value {
    json!({
        "model": "tiny",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hello there"}],
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_completion_returns_text_usage_and_choices() {
    let s = TestServer::default().await;
    let (status, v) = s.post_json("/v1/chat/completions", &greedy_chat(8)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "tiny");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["content"].is_string());
    assert_eq!(c["finish_reason"], "length");
    let u = &v["usage"];
    // ChatML around the two messages: far more tokens than the text alone.
    assert!(u["prompt_tokens"].as_u64().unwrap() > 20, "{u}");
    assert_eq!(u["completion_tokens"], 8);
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + 8);

    // Greedy is reproducible.
    let (_, again) = s.post_json("/v1/chat/completions", &greedy_chat(8)).await;
    assert_eq!(again["choices"][0]["message"], c["message"]);

    // n choices, seeded: seed+i per choice, so the same seed replays them all.
    let mut req = greedy_chat(6);
    req["temperature"] = json!(1.0);
    req["n"] = json!(3);
    req["seed"] = json!(7);
    let (status, a) = s.post_json("/v1/chat/completions", &req).await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = s.post_json("/v1/chat/completions", &req).await;
    let choices = a["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"], b["choices"][i]["message"]);
    }
    assert_eq!(a["usage"]["completion_tokens"], 18);
    // Prompt counted once for all choices.
    assert_eq!(a["usage"]["prompt_tokens"], v["usage"]["prompt_tokens"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_stream_sends_role_deltas_finish_usage_and_done() {
    let s = TestServer::default().await;
    let (_, full) = s.post_json("/v1/chat/completions", &greedy_chat(10)).await;
    let mut req = greedy_chat(10);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = s
        .post("/v1/chat/completions")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    // Every chunk carries "usage": null, the last one the totals and no choices.
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 10);
    assert_eq!(
        last["usage"]["prompt_tokens"],
        full["usage"]["prompt_tokens"]
    );
    assert!(chunks[0]["usage"].is_null() && chunks[0].get("usage").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_logprobs_and_stop_strings() {
    let s = TestServer::default().await;
    let mut req = greedy_chat(5);
    req["logprobs"] = json!(true);
    req["top_logprobs"] = json!(3);
    let (status, v) = s.post_json("/v1/chat/completions", &req).await;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 5);
    for t in content {
        let lp = t["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0 && lp.is_finite(), "{t}");
        assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 3);
        assert!(t["bytes"].is_array());
    }

    // A stop string cut from the greedy text ends the reply just before it.
    let (_, full) = s.post_json("/v1/chat/completions", &greedy_chat(24)).await;
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "{text:?}");
    let stop: String = chars[3..5].iter().collect();
    let mut req = greedy_chat(24);
    req["stop"] = json!(stop);
    let (_, v) = s.post_json("/v1/chat/completions", &req).await;
    let got = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(
        text.starts_with(got) && !got.contains(&stop) && got.len() < text.len(),
        "{got:?} vs {text:?}"
    );
}

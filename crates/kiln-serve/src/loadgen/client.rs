//! One streamed completion request against an OpenAI-compatible server, timed chunk by
//! chunk (the stream itself is kiln-lm's).

use kiln_lm::endpoint::sse::{parse_chunk, SseEvent};
use kiln_lm::endpoint::stream::StreamClient;
use serde_json::{json, Value};
use url::Url;

use super::target::Endpoint;
use super::timing::{RequestRecord, RequestTimer};
use super::LoadgenError;

/// What every request of a run shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The full route URL (see [`super::target::checked_url`]).
    pub url: Url,
    pub endpoint: Endpoint,
    pub model: String,
    /// Sent as `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    pub gen_tokens: usize,
    /// Send `ignore_eos` and `min_tokens` so servers that honour them (llama-server, vLLM)
    /// generate exactly `gen_tokens`; hosted APIs reject unknown fields, so it can be off.
    pub eos_hints: bool,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: StreamClient,
    cfg: ClientConfig,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, LoadgenError> {
        let http = StreamClient::new(cfg.url.clone(), cfg.api_key.clone())?;
        Ok(Client { http, cfg })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The JSON body for `prompt`: greedy, streamed, with usage in the last chunk.
    pub fn body(&self, prompt: &str) -> Value {
        let c = &self.cfg;
        let mut body = json!({
            "model": c.model,
            "max_tokens": c.gen_tokens,
            "temperature": 0,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        match c.endpoint {
            Endpoint::Completions => body["prompt"] = json!(prompt),
            Endpoint::Chat => body["messages"] = json!([{"role": "user", "content": prompt}]),
        }
        if c.eos_hints {
            body["ignore_eos"] = json!(true);
            body["min_tokens"] = json!(c.gen_tokens);
        }
        body
    }

    /// Sends one request and reads its stream to the end, timing each chunk. Dropping the
    /// future cancels the request.
    pub async fn complete(&self, prompt: &str) -> Result<RequestRecord, LoadgenError> {
        let mut events = self.http.post(&self.body(prompt)).await?;
        let mut timer = RequestTimer::new(events.sent());
        let mut done = false;
        while let Some(ev) = events.next().await {
            match ev? {
                (_, SseEvent::Done) => {
                    done = true;
                    break;
                }
                (at, SseEvent::Data(d)) => timer.on_chunk(at, &parse_chunk(&d)?),
            }
        }
        // A stream cut short (server crash, proxy timeout) must count as a failure, not as a
        // fast request; one that reported a finish_reason is complete even without [DONE].
        if !done && !timer.finished() {
            return Err(LoadgenError::Truncated {
                tokens: timer.tokens_so_far(),
            });
        }
        timer.finish(std::time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: Endpoint, eos_hints: bool) -> Client {
        Client::new(ClientConfig {
            url: Url::parse("http://127.0.0.1:1/v1/completions").unwrap(),
            endpoint,
            model: "m".into(),
            api_key: None,
            gen_tokens: 16,
            eos_hints,
        })
        .unwrap()
    }

    #[test]
    fn request_bodies() {
        let b = client(Endpoint::Completions, true).body("hi");
        assert_eq!(b["prompt"], "hi");
        assert_eq!(b["max_tokens"], 16);
        assert_eq!(b["min_tokens"], 16);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["temperature"], 0);
        let b = client(Endpoint::Chat, false).body("hi");
        assert_eq!(b["messages"][0]["content"], "hi");
        assert!(b.get("prompt").is_none() && b.get("ignore_eos").is_none());
    }
}

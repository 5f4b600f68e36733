//! One streamed completion request against an OpenAI-compatible server, timed chunk by
//! chunk.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Url;
use serde_json::{json, Value};

use super::sse::{parse_chunk, SseDecoder, SseEvent};
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
    http: reqwest::Client,
    cfg: ClientConfig,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, LoadgenError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Keep-alive connections are the steady state of a real client; without a cap
            // on idle ones, every concurrency level reuses the warm pool.
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| LoadgenError::Client(e.to_string()))?;
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

    /// Sends one request and reads its stream to the end. Dropping the future cancels the
    /// request (the connection closes, which servers take as a client abort).
    pub async fn complete(&self, prompt: &str) -> Result<RequestRecord, LoadgenError> {
        let body = self.body(prompt);
        // A keep-alive connection the server closed just as it was reused fails before
        // the request reaches it (seen with llama-server between levels); one retry on a
        // fresh connection is what every HTTP client does, and the clock restarts with it.
        let (sent, resp) = match self.send(&body).await {
            Err(e) if is_stale_connection(&e) => self.send(&body).await?,
            r => r?,
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(LoadgenError::Status {
                status: status.as_u16(),
                body: body.trim().chars().take(200).collect(),
            });
        }
        self.read_stream(sent, resp).await
    }

    async fn send(&self, body: &Value) -> Result<(Instant, reqwest::Response), reqwest::Error> {
        let mut req = self.http.post(self.cfg.url.clone()).json(body);
        if let Some(key) = &self.cfg.api_key {
            req = req.bearer_auth(key);
        }
        let sent = Instant::now();
        Ok((sent, req.send().await?))
    }

    /// Reads the SSE stream, timing each chunk, until `[DONE]` or the end of the body.
    async fn read_stream(
        &self,
        sent: Instant,
        resp: reqwest::Response,
    ) -> Result<RequestRecord, LoadgenError> {
        let mut timer = RequestTimer::new(sent);
        let mut decoder = SseDecoder::default();
        let mut stream = resp.bytes_stream();
        let mut done = false;
        'read: while let Some(bytes) = stream.next().await {
            let bytes = bytes?;
            let at = Instant::now();
            for ev in decoder.push(&bytes) {
                match ev {
                    SseEvent::Done => {
                        done = true;
                        break 'read;
                    }
                    SseEvent::Data(d) => timer.on_chunk(at, &parse_chunk(&d)?),
                }
            }
        }
        if !done {
            match decoder.finish() {
                Some(SseEvent::Done) => done = true,
                Some(SseEvent::Data(d)) => timer.on_chunk(Instant::now(), &parse_chunk(&d)?),
                None => {}
            }
        }
        // A stream cut short (server crash, proxy timeout) must count as a failure, not as a
        // fast request; one that reported a finish_reason is complete even without [DONE].
        if !done && !timer.finished() {
            return Err(LoadgenError::Truncated {
                tokens: timer.tokens_so_far(),
            });
        }
        timer.finish(Instant::now())
    }
}

/// Whether `e` is hyper's "connection closed before message completed" on sending: the
/// server closed a pooled connection before answering anything.
fn is_stale_connection(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = s.source();
    }
    false
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

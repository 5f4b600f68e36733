//! Streamed answers (`"stream": true`) of an OpenAI-compatible server, event by event with
//! the moment each arrived: what a load generator times. Async, on the workspace's one
//! HTTP client.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use thiserror::Error;

use super::sse::{SseDecoder, SseEvent};

/// What ends one streamed request.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("server sent an error in the stream: {0}")]
    InStream(String),
    #[error("malformed stream chunk ({reason}): {data}")]
    BadChunk { reason: String, data: String },
}

impl From<reqwest::Error> for StreamError {
    /// reqwest's own message is only "error sending request for url (...)"; the cause
    /// ("Connection refused", "connection closed before message completed") is in its
    /// sources, and it is what a user needs.
    fn from(e: reqwest::Error) -> Self {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        StreamError::Http(msg)
    }
}

/// Sends streamed requests to one route URL.
#[derive(Debug, Clone)]
pub struct StreamClient {
    http: reqwest::Client,
    url: reqwest::Url,
    api_key: Option<String>,
}

impl StreamClient {
    pub fn new(url: reqwest::Url, api_key: Option<String>) -> Result<Self, StreamError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Keep-alive connections are the steady state of a real client; without a cap
            // on idle ones, every concurrency level reuses the warm pool.
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| StreamError::Client(e.to_string()))?;
        Ok(Self { http, url, api_key })
    }

    /// POSTs `body` and returns its events as they come. Dropping the stream cancels the
    /// request (the connection closes, which servers take as a client abort).
    pub async fn post(&self, body: &Value) -> Result<EventStream, StreamError> {
        // A keep-alive connection the server closed just as it was reused fails before
        // the request reaches it (seen with llama-server between levels); one retry on a
        // fresh connection is what every HTTP client does, and the clock restarts with it.
        let (sent, resp) = match self.send(body).await {
            Err(e) if is_stale_connection(&e) => self.send(body).await?,
            r => r?,
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(StreamError::Status {
                status: status.as_u16(),
                body: body.trim().chars().take(200).collect(),
            });
        }
        Ok(EventStream {
            sent,
            bytes: Box::pin(resp.bytes_stream()),
            decoder: SseDecoder::default(),
            ready: Default::default(),
            ended: false,
        })
    }

    async fn send(&self, body: &Value) -> Result<(Instant, reqwest::Response), reqwest::Error> {
        let mut req = self.http.post(self.url.clone()).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let sent = Instant::now();
        Ok((sent, req.send().await?))
    }
}

type Bytes = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The events of one streamed answer.
pub struct EventStream {
    sent: Instant,
    bytes: Bytes,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<(Instant, SseEvent)>,
    ended: bool,
}

impl EventStream {
    /// When the request went out (the clock of time-to-first-token).
    pub fn sent(&self) -> Instant {
        self.sent
    }

    /// The next event and when its bytes arrived; `None` once the body has ended (a last
    /// line without its newline still counts).
    pub async fn next(&mut self) -> Option<Result<(Instant, SseEvent), StreamError>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Some(Ok(ev));
            }
            if self.ended {
                return None;
            }
            match self.bytes.next().await {
                Some(Ok(b)) => {
                    let at = Instant::now();
                    self.ready
                        .extend(self.decoder.push(&b).into_iter().map(|e| (at, e)));
                }
                Some(Err(e)) => return Some(Err(e.into())),
                None => {
                    self.ended = true;
                    if let Some(e) = self.decoder.finish() {
                        self.ready.push_back((Instant::now(), e));
                    }
                }
            }
        }
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

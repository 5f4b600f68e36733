//! POSTs to an OpenAI-compatible API with an API key, a timeout, and retries with
//! exponential backoff on the failures that may pass (no connection, 429, 5xx).

use std::time::Duration;

use serde_json::Value;

use crate::error::{LmError, Result};

/// Where an endpoint is and how to talk to it.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// The served model's name.
    pub model: String,
    /// Sent as `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    /// Attempts after the first on a connection error, 429 or 5xx.
    pub retries: usize,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// For a whole request, answer included.
    pub timeout: Duration,
}

impl EndpointOptions {
    pub fn new(url: &str, model: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: None,
            retries: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(300),
        }
    }

    /// `{url}/{route}`.
    pub fn route(&self, route: &str) -> String {
        format!("{}/{route}", self.url)
    }
}

/// A blocking JSON client for one endpoint.
pub(crate) struct Poster {
    opts: EndpointOptions,
    http: reqwest::blocking::Client,
}

impl Poster {
    pub fn new(opts: EndpointOptions) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(opts.timeout)
            .build()
            .map_err(|e| LmError::Endpoint {
                url: opts.url.clone(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self { opts, http })
    }

    pub fn options(&self) -> &EndpointOptions {
        &self.opts
    }

    /// An error about `route`.
    pub fn err(&self, route: &str, message: String) -> LmError {
        LmError::Endpoint {
            url: self.opts.route(route),
            message,
        }
    }

    /// POSTs `body` to `{url}/{route}` and reads the JSON answer, retrying what may pass.
    pub fn post(&self, route: &str, body: &Value) -> Result<Value> {
        let url = self.opts.route(route);
        let mut wait = self.opts.backoff;
        let mut attempt = 0;
        loop {
            let mut req = self.http.post(&url).json(body);
            if let Some(k) = &self.opts.api_key {
                req = req.bearer_auth(k);
            }
            let failure = match req.send() {
                Ok(resp) if resp.status().is_success() => {
                    return resp
                        .json()
                        .map_err(|e| self.err(route, format!("unreadable response: {e}")))
                }
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let text = resp.text().unwrap_or_default();
                    let message = format!("HTTP {code}: {}", text.trim());
                    if code != 429 && code < 500 {
                        return Err(self.err(route, message));
                    }
                    message
                }
                Err(e) => transport_error(&e),
            };
            if attempt >= self.opts.retries {
                return Err(self.err(route, format!("{failure} (after {} attempts)", attempt + 1)));
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn transport_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

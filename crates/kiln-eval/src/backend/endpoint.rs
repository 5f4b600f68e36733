//! Log-likelihoods from an OpenAI-compatible `/v1/completions` endpoint (kiln serve, vLLM,
//! llama-server, ...): the choices' full texts are sent with `echo`, `logprobs` 1 and
//! `max_tokens` 0, and the continuation's token log-probabilities are summed. With a local
//! tokenizer the prompts go as token ids split exactly as the local backend splits them (so
//! the two backends score the same tokens); without one, as text, the continuation found
//! by the returned character offsets.

use std::sync::Arc;
use std::time::Duration;

use kiln_model::Tokenizer;
use serde_json::{json, Value};

use super::split::split_request;
use super::{ChoiceScore, Decoding, GenBackend, LoglikBackend};
use crate::error::{EvalError, Result};
use crate::item::McItem;

#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// The served model's name.
    pub model: String,
    pub api_key: Option<String>,
    /// Attempts after the first on a connection error, 429 or 5xx.
    pub retries: usize,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
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
}

pub struct EndpointBackend {
    opts: EndpointOptions,
    agent: ureq::Agent,
    tokenizer: Option<Arc<Tokenizer>>,
}

impl EndpointBackend {
    pub fn new(opts: EndpointOptions, tokenizer: Option<Arc<Tokenizer>>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(opts.timeout).build();
        Self {
            opts,
            agent,
            tokenizer,
        }
    }

    fn err(&self, message: String) -> EvalError {
        EvalError::Endpoint {
            url: format!("{}/completions", self.opts.url),
            message,
        }
    }

    /// POSTs with retries and exponential backoff on failures that may pass.
    fn post(&self, body: &Value) -> Result<Value> {
        self.post_to("completions", body)
    }

    /// POSTs to `{url}/{path}` with retries and exponential backoff.
    fn post_to(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/{path}", self.opts.url);
        let mut wait = self.opts.backoff;
        let mut attempt = 0;
        loop {
            let mut req = self.agent.post(&url);
            if let Some(k) = &self.opts.api_key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            let failure = match req.send_json(body) {
                Ok(resp) => {
                    return resp
                        .into_json()
                        .map_err(|e| self.err(format!("unreadable response: {e}")))
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let message = format!("HTTP {code}: {}", text.trim());
                    if code != 429 && code < 500 {
                        return Err(self.err(message));
                    }
                    message
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.opts.retries {
                return Err(self.err(format!("{failure} (after {} attempts)", attempt + 1)));
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
}

/// (log-probability, greedy) of entry `i` of a legacy `logprobs` object.
fn entry(lp: &Value, i: usize) -> Option<(f64, bool)> {
    let logprob = lp["token_logprobs"][i].as_f64()?;
    let token = lp["tokens"][i].as_str()?;
    let greedy = lp["top_logprobs"][i]
        .as_object()
        .and_then(|m| {
            m.iter().max_by(|a, b| {
                a.1.as_f64()
                    .unwrap_or(f64::MIN)
                    .total_cmp(&b.1.as_f64().unwrap_or(f64::MIN))
            })
        })
        .is_some_and(|(t, _)| t == token);
    Some((logprob, greedy))
}

impl LoglikBackend for EndpointBackend {
    fn score(&self, item: &McItem) -> Result<Vec<ChoiceScore>> {
        // Per choice: the prompt sent, and how to find where its continuation starts.
        let (prompt, starts): (Value, Vec<Start>) = match &self.tokenizer {
            Some(tok) => {
                let reqs = item
                    .choices
                    .iter()
                    .map(|c| split_request(tok, c))
                    .collect::<Result<Vec<_>>>()?;
                (
                    json!(reqs.iter().map(|r| &r.tokens).collect::<Vec<_>>()),
                    reqs.iter().map(|r| Start::Token(r.context_len)).collect(),
                )
            }
            None => (
                json!(item
                    .choices
                    .iter()
                    .map(|c| format!("{}{}", c.context, c.continuation))
                    .collect::<Vec<_>>()),
                item.choices
                    .iter()
                    .map(|c| Start::Char(c.context.chars().count()))
                    .collect(),
            ),
        };
        let body = json!({
            "model": self.opts.model,
            "prompt": prompt,
            "max_tokens": 0,
            "echo": true,
            "logprobs": 1,
            "temperature": 0.0,
        });
        let resp = self.post(&body)?;
        let choices = resp["choices"]
            .as_array()
            .ok_or_else(|| self.err(format!("no choices in the response: {resp}")))?;
        let mut out = vec![None; item.choices.len()];
        for (k, c) in choices.iter().enumerate() {
            let index = c["index"].as_u64().map_or(k, |i| i as usize);
            let lp = &c["logprobs"];
            let n = lp["tokens"].as_array().map_or(0, Vec::len);
            let start = match starts.get(index) {
                Some(Start::Token(t)) => *t,
                Some(Start::Char(ch)) => lp["text_offset"]
                    .as_array()
                    .and_then(|o| {
                        o.iter()
                            .position(|x| x.as_u64().unwrap_or(0) as usize >= *ch)
                    })
                    .unwrap_or(n),
                None => return Err(self.err(format!("choice index {index} out of range"))),
            };
            if start == 0 || start >= n {
                return Err(self.err(format!(
                    "choice {index}: {n} echoed tokens, continuation expected from token {start} \
                     (does the server support echo with logprobs?)"
                )));
            }
            let mut score = ChoiceScore {
                logprob: 0.0,
                is_greedy: true,
                tokens: n - start,
            };
            for i in start..n {
                let (l, g) = entry(lp, i).ok_or_else(|| {
                    self.err(format!("choice {index}: no log-probability for token {i}"))
                })?;
                score.logprob += l;
                score.is_greedy &= g;
            }
            out[index] = Some(score);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| self.err(format!("no result for choice {i}"))))
            .collect()
    }

    fn describe(&self) -> Value {
        json!({"endpoint": self.opts.url, "model": self.opts.model})
    }
}

enum Start {
    Token(usize),
    Char(usize),
}

impl GenBackend for EndpointBackend {
    fn chat(&self, user: &str, max_tokens: usize) -> Result<String> {
        let body = json!({
            "model": self.opts.model,
            "messages": [{"role": "user", "content": user}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        });
        let resp = self.post_to("chat/completions", &body)?;
        resp["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                self.err(format!(
                    "no choices[0].message.content in the response: {resp}"
                ))
            })
    }

    fn generate(
        &self,
        prompt: &str,
        stop: &[String],
        max_tokens: usize,
        decoding: Decoding,
    ) -> Result<String> {
        let body = json!({
            "model": self.opts.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "seed": decoding.seed,
            "stop": stop,
        });
        let resp = self.post(&body)?;
        resp["choices"][0]["text"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(format!("no choices[0].text in the response: {resp}")))
    }
}

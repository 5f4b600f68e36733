//! A language model behind an OpenAI-compatible API (kiln serve, vLLM, llama-server, a
//! hosted API): completions at `/completions`, chat at `/chat/completions`, and
//! log-likelihoods from `/completions` with `echo`, `logprobs` 1 and `max_tokens` 0 (the
//! continuation's token log-probabilities summed). With a local tokenizer the prompts go as
//! token ids split exactly as the in-process model splits them, so both score the same
//! tokens; without one, as text, the continuation found by the returned character offsets.
//! [`sse`] and [`stream`] read streamed answers chunk by chunk (the load generator).

mod http;
pub mod sse;
pub mod stream;

use std::sync::Arc;

use kiln_model::{ChatMessage, Tokenizer};
use serde_json::{json, Value};

pub use http::EndpointOptions;

use crate::error::Result;
use crate::model::LanguageModel;
use crate::request::{Completion, FinishReason, GenParams, LoglikRequest, LoglikScore};
use crate::split::split_request;
use http::Poster;

pub struct EndpointLm {
    http: Poster,
    tokenizer: Option<Arc<Tokenizer>>,
}

impl EndpointLm {
    pub fn new(opts: EndpointOptions, tokenizer: Option<Arc<Tokenizer>>) -> Result<Self> {
        Ok(Self {
            http: Poster::new(opts)?,
            tokenizer,
        })
    }

    fn opts(&self) -> &EndpointOptions {
        self.http.options()
    }

    /// The sampling fields of a request body.
    fn body(&self, params: &GenParams) -> Value {
        let mut body = json!({
            "model": self.opts().model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop": params.stop,
        });
        if params.n > 1 {
            body["n"] = json!(params.n);
        }
        body
    }

    /// The `choices` of an answer, each read by `text`.
    fn completions(
        &self,
        route: &str,
        resp: &Value,
        text: impl Fn(&Value) -> Option<&str>,
    ) -> Result<Vec<Completion>> {
        let choices = resp["choices"]
            .as_array()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                self.http
                    .err(route, format!("no choices in the response: {resp}"))
            })?;
        choices
            .iter()
            .map(|c| {
                let t = text(c).ok_or_else(|| {
                    self.http.err(
                        route,
                        format!("a choice without its text in the response: {resp}"),
                    )
                })?;
                Ok(Completion {
                    text: t.to_string(),
                    finish_reason: match c["finish_reason"].as_str() {
                        Some("length") => FinishReason::Length,
                        _ => FinishReason::Stop,
                    },
                    tokens: resp["usage"]["completion_tokens"].as_u64().unwrap_or(0) as usize
                        / choices.len(),
                })
            })
            .collect()
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

/// Where a choice's continuation starts in the echoed tokens.
enum Start {
    Token(usize),
    Char(usize),
}

impl LanguageModel for EndpointLm {
    fn describe(&self) -> Value {
        json!({"endpoint": self.opts().url, "model": self.opts().model})
    }

    fn generate(&self, prompt: &str, params: &GenParams) -> Result<Vec<Completion>> {
        let mut body = self.body(params);
        body["prompt"] = json!(prompt);
        let resp = self.http.post("completions", &body)?;
        self.completions("completions", &resp, |c| c["text"].as_str())
    }

    fn chat(&self, messages: &[ChatMessage], params: &GenParams) -> Result<Vec<Completion>> {
        let mut body = self.body(params);
        body["messages"] = json!(messages);
        if params.stop.is_empty() {
            // Some hosted APIs refuse an empty stop list on chat.
            body.as_object_mut().map(|b| b.remove("stop"));
        }
        let resp = self.http.post("chat/completions", &body)?;
        self.completions("chat/completions", &resp, |c| {
            c["message"]["content"].as_str()
        })
    }

    fn loglik(&self, requests: &[LoglikRequest]) -> Result<Vec<LoglikScore>> {
        let route = "completions";
        // Per request: the prompt sent, and how to find where its continuation starts.
        let (prompt, starts): (Value, Vec<Start>) = match &self.tokenizer {
            Some(tok) => {
                let reqs = requests
                    .iter()
                    .map(|c| split_request(tok, c))
                    .collect::<Result<Vec<_>>>()?;
                (
                    json!(reqs.iter().map(|r| &r.tokens).collect::<Vec<_>>()),
                    reqs.iter().map(|r| Start::Token(r.context_len)).collect(),
                )
            }
            None => (
                json!(requests
                    .iter()
                    .map(|c| format!("{}{}", c.context, c.continuation))
                    .collect::<Vec<_>>()),
                requests
                    .iter()
                    .map(|c| Start::Char(c.context.chars().count()))
                    .collect(),
            ),
        };
        let body = json!({
            "model": self.opts().model,
            "prompt": prompt,
            "max_tokens": 0,
            "echo": true,
            "logprobs": 1,
            "temperature": 0.0,
        });
        let resp = self.http.post(route, &body)?;
        let err = |m: String| self.http.err(route, m);
        let choices = resp["choices"]
            .as_array()
            .ok_or_else(|| err(format!("no choices in the response: {resp}")))?;
        let mut out = vec![None; requests.len()];
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
                None => return Err(err(format!("choice index {index} out of range"))),
            };
            if start == 0 || start >= n {
                return Err(err(format!(
                    "choice {index}: {n} echoed tokens, continuation expected from token {start} \
                     (does the server support echo with logprobs?)"
                )));
            }
            let mut score = LoglikScore {
                logprob: 0.0,
                is_greedy: true,
                tokens: n - start,
            };
            for i in start..n {
                let (l, g) = entry(lp, i).ok_or_else(|| {
                    err(format!("choice {index}: no log-probability for token {i}"))
                })?;
                score.logprob += l;
                score.is_greedy &= g;
            }
            out[index] = Some(score);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| err(format!("no result for choice {i}"))))
            .collect()
    }
}

//! A language model in this process: kiln's engine on a loaded model. Requests from many
//! threads batch together in the engine's steps. Log-likelihoods are prompt log-probabilities
//! of the context and continuation; the first of several requests that share a context
//! computes it, and the others, submitted after it, take the context's full blocks from
//! the prefix cache (only the continuations and the context's last partial block are
//! computed again).

use kiln_engine::RequestStream;
use kiln_engine::{EngineEvent, EngineHandle, EngineRequest, FinishReason as EngineFinish};
use kiln_model::{ChatMessage, SamplingParams};

use crate::error::{LmError, Result};
use crate::model::LanguageModel;
use crate::request::{Completion, FinishReason, GenParams, LoglikRequest, LoglikScore};
use crate::split::{split_request, TokenizedRequest};

pub struct EngineLm {
    engine: EngineHandle,
    info: serde_json::Value,
}

impl EngineLm {
    /// `info` is what results record as the model (its path and hash, say).
    pub fn new(engine: EngineHandle, info: serde_json::Value) -> Self {
        Self { engine, info }
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The prompt tokens `chat` gives the model for `messages`.
    pub fn chat_prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Ok(self
            .engine
            .chat_prompt()
            .encode(self.engine.tokenizer(), messages)?)
    }

    fn submit_scoring(&self, t: &TokenizedRequest) -> Result<RequestStream> {
        let mut r = EngineRequest::greedy(t.tokens.clone(), 0);
        r.stop_at_eos = false;
        r.prompt_logprobs = Some(1);
        r.prompt_logprobs_from = t.context_len;
        Ok(self.engine.submit(r)?)
    }

    /// `params.n` continuations of the prompt tokens `ids`, submitted together.
    fn complete(&self, ids: Vec<u32>, params: &GenParams) -> Result<Vec<Completion>> {
        let context = self.engine.context_length();
        let room = context.saturating_sub(ids.len());
        if room == 0 {
            return Err(LmError::Request(format!(
                "a prompt of {} tokens leaves no room in the model's context of {context}",
                ids.len()
            )));
        }
        let streams = (0..params.n.max(1))
            .map(|i| {
                let mut r = EngineRequest::greedy(ids.clone(), params.max_tokens.min(room));
                r.stop = params.stop.clone();
                if params.temperature > 0.0 {
                    r.sampling = SamplingParams {
                        temperature: params.temperature,
                        top_k: 0,
                        top_p: params.top_p,
                        min_p: 0.0,
                        seed: params.seed.wrapping_add(i as u64),
                        ..SamplingParams::greedy()
                    };
                }
                Ok(self.engine.submit(r)?)
            })
            .collect::<Result<Vec<_>>>()?;
        streams.into_iter().map(collect_text).collect()
    }
}

/// Reads a generation's stream to its end.
fn collect_text(mut stream: RequestStream) -> Result<Completion> {
    let (mut text, mut tokens) = (String::new(), 0);
    loop {
        match stream.blocking_recv() {
            Some(EngineEvent::Token { text: t, .. }) => {
                text.push_str(&t);
                tokens += 1;
            }
            Some(EngineEvent::Finished { reason, .. }) => {
                let finish_reason = match reason {
                    EngineFinish::Stop => FinishReason::Stop,
                    EngineFinish::Length | EngineFinish::Abort => FinishReason::Length,
                };
                return Ok(Completion {
                    text,
                    finish_reason,
                    tokens,
                });
            }
            Some(EngineEvent::Error(e)) => return Err(LmError::Engine(e)),
            Some(EngineEvent::PromptLogprobs(_)) => {}
            None => return Err(LmError::Engine("the engine stopped mid-request".into())),
        }
    }
}

/// Waits for a request's prompt log-probabilities and sums them.
fn collect_score(mut stream: RequestStream) -> Result<LoglikScore> {
    let mut score = None;
    loop {
        match stream.blocking_recv() {
            Some(EngineEvent::PromptLogprobs(lps)) => {
                score = Some(LoglikScore {
                    logprob: lps.iter().map(|l| l.logprob as f64).sum(),
                    is_greedy: lps
                        .iter()
                        .all(|l| l.top.first().is_some_and(|t| t.0 == l.token)),
                    tokens: lps.len(),
                })
            }
            Some(EngineEvent::Finished { .. }) => {
                return score
                    .ok_or_else(|| LmError::Engine("the engine sent no log-probabilities".into()))
            }
            Some(EngineEvent::Error(e)) => return Err(LmError::Engine(e)),
            Some(EngineEvent::Token { .. }) => {}
            None => return Err(LmError::Engine("the engine stopped mid-request".into())),
        }
    }
}

impl LanguageModel for EngineLm {
    fn describe(&self) -> serde_json::Value {
        self.info.clone()
    }

    fn generate(&self, prompt: &str, params: &GenParams) -> Result<Vec<Completion>> {
        let ids = self.engine.tokenizer().encode(prompt, true, false)?;
        self.complete(ids, params)
    }

    fn chat(&self, messages: &[ChatMessage], params: &GenParams) -> Result<Vec<Completion>> {
        self.complete(self.chat_prompt_ids(messages)?, params)
    }

    fn loglik(&self, requests: &[LoglikRequest]) -> Result<Vec<LoglikScore>> {
        let tokenizer = self.engine.tokenizer();
        let reqs = requests
            .iter()
            .map(|r| split_request(tokenizer, r))
            .collect::<Result<Vec<_>>>()?;
        let Some((first, rest)) = reqs.split_first() else {
            return Ok(vec![]);
        };
        let shares_context = rest.iter().all(|r| {
            r.context_len == first.context_len
                && r.tokens[..r.context_len] == first.tokens[..first.context_len]
        });
        let mut scores = Vec::with_capacity(reqs.len());
        let pending: Vec<RequestStream> = if shares_context {
            // The first request fills the prefix cache with the context before the rest.
            scores.push(collect_score(self.submit_scoring(first)?)?);
            rest.iter()
                .map(|r| self.submit_scoring(r))
                .collect::<Result<_>>()?
        } else {
            reqs.iter()
                .map(|r| self.submit_scoring(r))
                .collect::<Result<_>>()?
        };
        for s in pending {
            scores.push(collect_score(s)?);
        }
        Ok(scores)
    }
}

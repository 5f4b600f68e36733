//! Log-likelihoods from kiln's engine on a local model. Questions scored from several
//! threads batch together in the engine's steps; the first choice of a question computes
//! the shared context, and the other choices, submitted after it, take the context's full
//! blocks from the prefix cache (only the continuations and the context's last partial
//! block are computed again).

use kiln_engine::{EngineEvent, EngineHandle, EngineRequest, RequestStream};
use kiln_model::{ChatMessage, SamplingParams};

use super::split::{split_request, TokenizedRequest};
use super::{ChoiceScore, Decoding, GenBackend, LoglikBackend};
use crate::error::{EvalError, Result};
use crate::item::McItem;

pub struct LocalBackend {
    engine: EngineHandle,
    info: serde_json::Value,
}

impl LocalBackend {
    /// `info` is what results record as the model (path, hash).
    pub fn new(engine: EngineHandle, info: serde_json::Value) -> Self {
        Self { engine, info }
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    fn submit(&self, t: &TokenizedRequest) -> Result<RequestStream> {
        let mut r = EngineRequest::greedy(t.tokens.clone(), 0);
        r.stop_at_eos = false;
        r.prompt_logprobs = Some(1);
        r.prompt_logprobs_from = t.context_len;
        Ok(self.engine.submit(r)?)
    }
}

/// Waits for a request's prompt log-probabilities and sums them.
fn collect(mut stream: RequestStream) -> Result<ChoiceScore> {
    let mut score = None;
    loop {
        match stream.blocking_recv() {
            Some(EngineEvent::PromptLogprobs(lps)) => {
                score = Some(ChoiceScore {
                    logprob: lps.iter().map(|l| l.logprob as f64).sum(),
                    is_greedy: lps
                        .iter()
                        .all(|l| l.top.first().is_some_and(|t| t.0 == l.token)),
                    tokens: lps.len(),
                })
            }
            Some(EngineEvent::Finished { .. }) => {
                return score
                    .ok_or_else(|| EvalError::Task("engine sent no log-probabilities".into()))
            }
            Some(EngineEvent::Error(e)) => return Err(EvalError::Task(format!("engine: {e}"))),
            Some(EngineEvent::Token { .. }) => {}
            None => return Err(EvalError::Task("engine stopped mid-request".into())),
        }
    }
}

impl LoglikBackend for LocalBackend {
    fn score(&self, item: &McItem) -> Result<Vec<ChoiceScore>> {
        let tokenizer = self.engine.tokenizer();
        let reqs = item
            .choices
            .iter()
            .map(|c| split_request(tokenizer, c))
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
            // The first choice fills the prefix cache with the context before the rest.
            scores.push(collect(self.submit(first)?)?);
            rest.iter().map(|r| self.submit(r)).collect::<Result<_>>()?
        } else {
            reqs.iter().map(|r| self.submit(r)).collect::<Result<_>>()?
        };
        for s in pending {
            scores.push(collect(s)?);
        }
        Ok(scores)
    }

    fn describe(&self) -> serde_json::Value {
        self.info.clone()
    }
}

impl GenBackend for LocalBackend {
    fn chat(&self, user: &str, max_tokens: usize) -> Result<String> {
        let messages = [ChatMessage::new("user", user)];
        let ids = self
            .engine
            .chat_prompt()
            .encode(self.engine.tokenizer(), &messages)?;
        self.complete(ids, &[], max_tokens, Decoding::GREEDY)
    }

    fn generate(
        &self,
        prompt: &str,
        stop: &[String],
        max_tokens: usize,
        decoding: Decoding,
    ) -> Result<String> {
        let ids = self.engine.tokenizer().encode(prompt, true, false)?;
        self.complete(ids, stop, max_tokens, decoding)
    }
}

impl LocalBackend {
    /// The engine's continuation of the prompt tokens `ids`.
    fn complete(
        &self,
        ids: Vec<u32>,
        stop: &[String],
        max_tokens: usize,
        decoding: Decoding,
    ) -> Result<String> {
        let room = self.engine.context_length().saturating_sub(ids.len());
        if room == 0 {
            return Err(EvalError::Task(format!(
                "a prompt of {} tokens leaves no room in the model's context of {}",
                ids.len(),
                self.engine.context_length()
            )));
        }
        let mut r = EngineRequest::greedy(ids, max_tokens.min(room));
        r.stop = stop.to_vec();
        if decoding.temperature > 0.0 {
            r.sampling = SamplingParams {
                temperature: decoding.temperature,
                top_k: 0,
                top_p: decoding.top_p,
                min_p: 0.0,
                seed: decoding.seed,
                ..SamplingParams::greedy()
            };
        }
        let mut stream = self.engine.submit(r)?;
        let mut text = String::new();
        loop {
            match stream.blocking_recv() {
                Some(EngineEvent::Token { text: t, .. }) => text.push_str(&t),
                Some(EngineEvent::Finished { .. }) => return Ok(text),
                Some(EngineEvent::Error(e)) => return Err(EvalError::Task(format!("engine: {e}"))),
                Some(EngineEvent::PromptLogprobs(_)) => {}
                None => return Err(EvalError::Task("engine stopped mid-request".into())),
            }
        }
    }
}

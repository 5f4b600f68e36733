//! The per-request half of the engine step that follows the model: sample a token, turn it
//! into text (complete characters only, stop strings held back until they can no longer
//! match), compute log-probabilities, and send events to the client.

use std::sync::Arc;

use kiln_model::stop::StopMatcher;
use kiln_model::tokenizer::TokenStreamDecoder;
use kiln_model::{LogitsProcessor, Tokenizer};
use tokio::sync::mpsc::UnboundedSender;

use crate::logprobs::token_logprob;
use crate::output::{EngineEvent, FinishReason, TokenLogprob, Usage};
use crate::request::EngineRequest;

pub struct OutputStream {
    sampler: LogitsProcessor,
    detok: TokenStreamDecoder,
    stops: StopMatcher,
    tokenizer: Arc<Tokenizer>,
    tx: UnboundedSender<EngineEvent>,
    max_tokens: usize,
    logprobs: Option<usize>,
    prompt_logprobs: Option<usize>,
    prompt_logprobs_from: usize,
    /// Prompt then generated tokens: the sampler's penalty history.
    history: Vec<u32>,
    prompt_len: usize,
    pub cached_tokens: usize,
}

impl OutputStream {
    /// Fails (after telling the client) when the sampling parameters are invalid; the
    /// handle checks them at submission, so this is a second line of defence.
    pub fn new(
        req: &EngineRequest,
        tokenizer: Arc<Tokenizer>,
        tx: UnboundedSender<EngineEvent>,
    ) -> Option<Self> {
        let sampler = match LogitsProcessor::new(req.sampling.clone()) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(EngineEvent::Error(e.to_string()));
                return None;
            }
        };
        Some(Self {
            sampler,
            detok: TokenStreamDecoder::new(),
            stops: StopMatcher::new(req.stop.clone()),
            tokenizer,
            tx,
            max_tokens: req.max_tokens,
            logprobs: req.logprobs,
            prompt_logprobs: req.prompt_logprobs,
            prompt_logprobs_from: req.prompt_logprobs_from,
            history: req.prompt.clone(),
            prompt_len: req.prompt.len(),
            cached_tokens: 0,
        })
    }

    /// Whether the client still listens; a closed stream is cancelled by the engine.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn generated(&self) -> usize {
        self.history.len() - self.prompt_len
    }

    /// Whether prompt log-probabilities are still to be sent.
    pub fn wants_prompt_logprobs(&self) -> bool {
        self.prompt_logprobs.is_some()
    }

    /// `rows[i]` are the logits after prompt token `first - 1 + i`, `first` the first scored
    /// token; scores prompt tokens `first..` and sends them in one event (once).
    pub fn send_prompt_logprobs(&mut self, rows: &[Vec<f32>]) {
        let Some(top) = self.prompt_logprobs.take() else {
            return;
        };
        let prompt = &self.history[..self.prompt_len];
        let first = self.prompt_logprobs_from.max(1).min(prompt.len());
        let lps: Vec<TokenLogprob> = rows
            .iter()
            .zip(&prompt[first..])
            .map(|(logits, &next)| token_logprob(logits, next, top, &self.tokenizer))
            .collect();
        let _ = self.tx.send(EngineEvent::PromptLogprobs(lps));
    }

    /// The next token from the last position's logits (penalties see prompt and output).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let id = self.sampler.sample(logits, &self.history);
        self.history.push(id);
        id
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Streams sampled token `id` (drawn from `logits`). `ended` is the scheduler's verdict
    /// (an end token or the length limit); a stop string can also end the request here.
    /// Returns how the request ended, if it did (the `Finished` event has then been sent).
    pub fn emit(
        &mut self,
        id: u32,
        logits: &[f32],
        ended: Option<FinishReason>,
    ) -> Option<FinishReason> {
        let logprob = self
            .logprobs
            .map(|top| token_logprob(logits, id, top, &self.tokenizer));
        let eos = ended == Some(FinishReason::Stop);
        let mut finish = ended;
        let mut text = String::new();
        if !eos {
            let piece = self.detok.push(&self.tokenizer, id).ok().flatten();
            let (safe, hit) = self.stops.push(piece.as_deref().unwrap_or(""));
            text = safe;
            if hit {
                finish = Some(FinishReason::Stop);
            }
        }
        if eos || finish == Some(FinishReason::Length) {
            let rest = self.flush_text();
            text.push_str(&rest);
        }
        let _ = self.tx.send(EngineEvent::Token { id, text, logprob });
        if let Some(reason) = finish {
            self.finish(reason);
        }
        finish
    }

    /// Text still held back when generation ends for a reason other than a stop string:
    /// an incomplete character, or a partial stop-string match that never completed.
    fn flush_text(&mut self) -> String {
        let rest = self.detok.flush(&self.tokenizer).ok().flatten();
        let (mut text, hit) = self.stops.push(rest.as_deref().unwrap_or(""));
        if !hit {
            text.push_str(&self.stops.finish());
        }
        text
    }

    pub fn finish(&self, reason: FinishReason) {
        let usage = Usage {
            prompt_tokens: self.prompt_len,
            completion_tokens: self.generated(),
            cached_tokens: self.cached_tokens,
        };
        let _ = self.tx.send(EngineEvent::Finished { reason, usage });
    }

    pub fn fail(&self, msg: String) {
        let _ = self.tx.send(EngineEvent::Error(msg));
    }
}

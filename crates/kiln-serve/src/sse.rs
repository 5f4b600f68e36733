//! Streaming responses: engine events become `data: {chunk}` server-sent events, then an
//! optional usage chunk, then `data: [DONE]`. The response body owns the engine streams, so
//! a client that disconnects drops them and the engine cancels its requests.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use kiln_engine::EngineEvent;

use crate::generation::{next_before, ChoiceEvents, Deadline};
use crate::openai::common::UsageOut;
use crate::openai::error::ApiError;
use crate::request_log::Record;

/// How one API writes its chunks (JSON values serialised as strings).
pub trait ChunkFormat: Send + 'static {
    /// Chunks sent before the first engine event (chat: each choice's role).
    fn opening(&mut self) -> Vec<String>;
    /// Chunks for one event of choice `index` (`Error` is handled by the stream).
    fn event(&mut self, index: usize, ev: &EngineEvent) -> Vec<String>;
    /// The last chunk with `stream_options.include_usage`: no choices, the usage.
    fn usage(&self, usage: UsageOut) -> String;
}

pub struct StreamPlan {
    pub events: ChoiceEvents,
    pub format: Box<dyn ChunkFormat>,
    pub record: Record,
    pub deadline: Option<Deadline>,
    pub include_usage: bool,
    /// Prompt tokens of the whole request (each prompt once).
    pub prompt_tokens: usize,
}

struct Driver {
    events: Option<ChoiceEvents>,
    format: Box<dyn ChunkFormat>,
    /// Let go when the last event is queued, so the request is logged and counted before
    /// the client reads `[DONE]`.
    record: Option<Record>,
    deadline: Option<Deadline>,
    include_usage: bool,
    prompt_tokens: usize,
    pending: VecDeque<String>,
    completion_tokens: usize,
    cached_tokens: usize,
}

impl Driver {
    fn new(plan: StreamPlan) -> Self {
        let StreamPlan {
            events,
            mut format,
            record,
            deadline,
            include_usage,
            prompt_tokens,
        } = plan;
        // Until the stream ends on its own, a drop means the client went away.
        record.set_outcome("client_disconnected");
        Self {
            pending: format.opening().into(),
            events: Some(events),
            format,
            record: Some(record),
            deadline,
            include_usage,
            prompt_tokens,
            completion_tokens: 0,
            cached_tokens: 0,
        }
    }

    fn outcome(&self, outcome: &'static str) {
        if let Some(r) = &self.record {
            r.set_outcome(outcome);
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(data) = self.pending.pop_front() {
                return Some(Event::default().data(data));
            }
            let events = self.events.as_mut()?;
            match next_before(events, self.deadline).await {
                Ok(Some((i, ev))) => self.on_event(i, ev),
                Ok(None) => self.end(None),
                Err(e) => {
                    self.outcome("timeout");
                    self.end(Some(e));
                }
            }
        }
    }

    fn on_event(&mut self, i: usize, ev: EngineEvent) {
        match &ev {
            EngineEvent::Token { .. } => {
                if let Some(r) = &self.record {
                    r.on_token(i);
                }
            }
            EngineEvent::Finished { usage, .. } => {
                self.completion_tokens += usage.completion_tokens;
                self.cached_tokens += usage.cached_tokens;
            }
            EngineEvent::Error(msg) => {
                self.outcome("error");
                let e = ApiError::internal(format!("generation failed: {msg}"));
                return self.end(Some(e));
            }
            EngineEvent::PromptLogprobs(_) => {}
        }
        let chunks = self.format.event(i, &ev);
        self.pending.extend(chunks);
    }

    /// Drops the engine streams (cancelling what still runs), then queues the closing
    /// events: an error if there was one, the usage chunk, `[DONE]`.
    fn end(&mut self, error: Option<ApiError>) {
        self.events = None;
        match error {
            Some(e) => self.pending.push_back(e.to_json().to_string()),
            None => {
                self.outcome("completed");
                if self.include_usage {
                    let usage = UsageOut::new(
                        self.prompt_tokens,
                        self.completion_tokens,
                        self.cached_tokens,
                    );
                    self.pending.push_back(self.format.usage(usage));
                }
            }
        }
        self.pending.push_back("[DONE]".into());
        self.record = None;
    }
}

pub fn sse_response(plan: StreamPlan) -> Response {
    let body = futures::stream::unfold(Driver::new(plan), |mut d| async move {
        let ev = d.next().await?;
        Some((Ok::<Event, Infallible>(ev), d))
    });
    Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response()
}

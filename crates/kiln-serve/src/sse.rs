//! Streaming responses: engine events become `data: {chunk}` server-sent events, then an
//! optional usage chunk, then `data: [DONE]`. The response body owns the engine streams, so
//! a client that disconnects drops them and the engine cancels its requests.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
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
    plan: StreamPlan,
    events: Option<ChoiceEvents>,
    pending: VecDeque<String>,
    completion_tokens: usize,
    cached_tokens: usize,
}

impl Driver {
    fn new(mut plan: StreamPlan) -> Self {
        let pending = plan.format.opening().into();
        let events = std::mem::replace(&mut plan.events, futures::stream::empty().boxed());
        // Until the stream ends on its own, a drop means the client went away.
        plan.record.set_outcome("client_disconnected");
        Self {
            plan,
            events: Some(events),
            pending,
            completion_tokens: 0,
            cached_tokens: 0,
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(data) = self.pending.pop_front() {
                return Some(Event::default().data(data));
            }
            let events = self.events.as_mut()?;
            match next_before(events, self.plan.deadline).await {
                Ok(Some((i, ev))) => self.on_event(i, ev),
                Ok(None) => self.end(None),
                Err(e) => {
                    self.plan.record.set_outcome("timeout");
                    self.end(Some(e));
                }
            }
        }
    }

    fn on_event(&mut self, i: usize, ev: EngineEvent) {
        match &ev {
            EngineEvent::Token { .. } => self.plan.record.on_token(i),
            EngineEvent::Finished { usage, .. } => {
                self.completion_tokens += usage.completion_tokens;
                self.cached_tokens += usage.cached_tokens;
            }
            EngineEvent::Error(msg) => {
                self.plan.record.set_outcome("error");
                let e = ApiError::internal(format!("generation failed: {msg}"));
                return self.end(Some(e));
            }
            EngineEvent::PromptLogprobs(_) => {}
        }
        let chunks = self.plan.format.event(i, &ev);
        self.pending.extend(chunks);
    }

    /// Drops the engine streams (cancelling what still runs), then queues the closing
    /// events: an error if there was one, the usage chunk, `[DONE]`.
    fn end(&mut self, error: Option<ApiError>) {
        self.events = None;
        match error {
            Some(e) => self.pending.push_back(e.to_json().to_string()),
            None => {
                self.plan.record.set_outcome("completed");
                if self.plan.include_usage {
                    let usage = UsageOut::new(
                        self.plan.prompt_tokens,
                        self.completion_tokens,
                        self.cached_tokens,
                    );
                    self.pending.push_back(self.plan.format.usage(usage));
                }
            }
        }
        self.pending.push_back("[DONE]".into());
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

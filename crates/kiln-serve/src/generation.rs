//! The part both completion APIs share: submit one engine request per choice, merge their
//! event streams (tagged with the choice index), hold each choice to its token budget, and
//! either collect everything (non-streaming) or hand the events to an SSE stream.
//! Dropping the merged stream drops every `RequestStream`, which cancels the requests.

use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use kiln_engine::{EngineEvent, EngineHandle, EngineRequest, FinishReason, RequestStream};
use kiln_engine::{TokenLogprob, Usage};

use crate::openai::error::ApiError;
use crate::request_log::RequestRecord;

/// Events of all choices, `(choice index, event)`.
pub type ChoiceEvents = BoxStream<'static, (usize, EngineEvent)>;

/// When a request must be done by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: tokio::time::Instant,
    pub timeout: Duration,
}

impl Deadline {
    pub fn after(start: std::time::Instant, timeout: Option<Duration>) -> Option<Self> {
        timeout.map(|t| Self {
            at: tokio::time::Instant::from_std(start + t),
            timeout: t,
        })
    }

    pub fn error(&self) -> ApiError {
        ApiError::timeout(self.timeout.as_secs_f64())
    }
}

/// The next event, or `Err` once the deadline passes.
pub async fn next_before(
    events: &mut ChoiceEvents,
    deadline: Option<Deadline>,
) -> Result<Option<(usize, EngineEvent)>, ApiError> {
    match deadline {
        None => Ok(events.next().await),
        Some(d) => tokio::time::timeout_at(d.at, events.next())
            .await
            .map_err(|_| d.error()),
    }
}

/// Submits every request, all or none: if one is refused, those already queued are
/// dropped (cancelled). `what` names the prompt field in errors.
/// Tokens a request may cost against a rate limit: every prompt plus every budget.
pub fn token_cost(requests: &[EngineRequest]) -> u64 {
    requests
        .iter()
        .map(|r| (r.prompt.len() + r.max_tokens) as u64)
        .sum()
}

pub fn submit_all(
    engine: &EngineHandle,
    requests: Vec<EngineRequest>,
    what: &str,
) -> Result<ChoiceEvents, ApiError> {
    let budgets: Vec<usize> = requests.iter().map(|r| r.max_tokens).collect();
    let streams = requests
        .into_iter()
        .map(|r| engine.submit(r).map_err(|e| ApiError::from_engine(e, what)))
        .collect::<Result<Vec<_>, _>>()?;
    let per_choice = streams
        .into_iter()
        .zip(budgets)
        .enumerate()
        .map(|(i, (s, budget))| choice_events(i, s, budget));
    Ok(stream::select_all(per_choice).boxed())
}

struct ChoiceState {
    stream: RequestStream,
    budget: usize,
    sent: usize,
}

/// One choice's events up to and including its `Finished` (or `Error`). Tokens past the
/// budget are dropped (an engine may sample one token even for `max_tokens` 0); a stream
/// that ends without `Finished` yields an `Error`.
fn choice_events(index: usize, stream: RequestStream, budget: usize) -> ChoiceEvents {
    let state = ChoiceState {
        stream,
        budget,
        sent: 0,
    };
    stream::unfold(Some(state), move |st| async move {
        let mut st = st?;
        loop {
            let Some(ev) = st.stream.recv().await else {
                let err = EngineEvent::Error("the engine dropped the request".into());
                return Some(((index, err), None));
            };
            match ev {
                EngineEvent::Token { .. } if st.sent >= st.budget => continue,
                EngineEvent::Token { .. } => st.sent += 1,
                EngineEvent::Finished { reason, mut usage } => {
                    let capped = usage.completion_tokens > st.budget;
                    usage.completion_tokens = st.sent;
                    let reason = if capped { FinishReason::Length } else { reason };
                    return Some(((index, EngineEvent::Finished { reason, usage }), None));
                }
                EngineEvent::Error(_) => return Some(((index, ev), None)),
                EngineEvent::PromptLogprobs(_) => {}
            }
            return Some(((index, ev), Some(st)));
        }
    })
    .boxed()
}

/// Everything one choice produced.
#[derive(Debug, Clone, Default)]
pub struct ChoiceResult {
    pub text: String,
    /// Generated tokens' log-probabilities, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    pub prompt_logprobs: Option<Vec<TokenLogprob>>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

/// Waits for every choice to finish (non-streaming responses).
pub async fn collect(
    mut events: ChoiceEvents,
    choices: usize,
    deadline: Option<Deadline>,
    record: &RequestRecord,
) -> Result<Vec<ChoiceResult>, ApiError> {
    let mut out = vec![ChoiceResult::default(); choices];
    while let Some((i, ev)) = next_before(&mut events, deadline).await.inspect_err(|_| {
        record.set_outcome("timeout");
    })? {
        let Some(c) = out.get_mut(i) else { continue };
        match ev {
            EngineEvent::PromptLogprobs(lps) => c.prompt_logprobs = Some(lps),
            EngineEvent::Token { text, logprob, .. } => {
                record.on_token(i);
                c.text.push_str(&text);
                c.logprobs.extend(logprob);
            }
            EngineEvent::Finished { reason, usage } => {
                c.finish = Some(reason);
                c.usage = usage;
            }
            EngineEvent::Error(e) => {
                record.set_outcome("error");
                return Err(ApiError::internal(format!("generation failed: {e}")));
            }
        }
    }
    Ok(out)
}

/// OpenAI's name for a finish reason.
pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Abort => "abort",
    }
}

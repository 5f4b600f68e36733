//! One record per HTTP request: the middleware creates it, handlers and response streams
//! fill it in (model, tokens, first-token time), and when the last holder lets go (after
//! the last byte of a stream, or when its client disconnects) it writes one structured
//! log line and feeds the latency histograms.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;
use crate::openai::common::random_id;
use crate::state::AppState;

pub type Record = Arc<RequestRecord>;

#[derive(Debug)]
pub struct RequestRecord {
    pub id: String,
    pub start: Instant,
    method: String,
    path: String,
    metrics: Arc<Metrics>,
    fields: Mutex<Fields>,
}

#[derive(Debug, Default)]
struct Fields {
    model: Option<String>,
    status: Option<u16>,
    prompt_tokens: usize,
    completion_tokens: usize,
    first_token: Option<Instant>,
    /// Time of each choice's latest token.
    last_token: Vec<Option<Instant>>,
    /// How a generation ended ("completed", "client_disconnected", "timeout", "error").
    outcome: Option<&'static str>,
}

impl RequestRecord {
    pub fn new(metrics: Arc<Metrics>, method: &str, path: &str) -> Self {
        Self {
            id: random_id(),
            start: Instant::now(),
            method: method.to_string(),
            path: path.to_string(),
            metrics,
            fields: Mutex::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Fields) -> R) -> Option<R> {
        self.fields.lock().ok().map(|mut g| f(&mut g))
    }

    pub fn set_model(&self, model: &str) {
        self.with(|f| f.model = Some(model.to_string()));
    }

    /// The request was admitted with this many prompt tokens and `choices` choices.
    pub fn admitted(&self, prompt_tokens: usize, choices: usize) {
        self.with(|f| {
            f.prompt_tokens = prompt_tokens;
            f.last_token = vec![None; choices];
        });
    }

    pub fn set_status(&self, status: u16) {
        self.with(|f| f.status = Some(status));
    }

    pub fn set_outcome(&self, outcome: &'static str) {
        self.with(|f| f.outcome = Some(outcome));
    }

    /// A token of choice `choice` reached the response: time to first token, time since
    /// that choice's previous token.
    pub fn on_token(&self, choice: usize) {
        let now = Instant::now();
        let Some((model, ttft, gap)) = self.with(|f| {
            let ttft = f.first_token.is_none().then(|| now - self.start);
            f.first_token.get_or_insert(now);
            f.completion_tokens += 1;
            let gap = match f.last_token.get_mut(choice) {
                Some(slot) => slot.replace(now).map(|t| now - t),
                None => None,
            };
            (f.model.clone(), ttft, gap)
        }) else {
            return;
        };
        let Some(m) = model.as_deref().and_then(|m| self.metrics.model(m)) else {
            return;
        };
        if let Some(t) = ttft {
            m.ttft.observe(t.as_secs_f64());
        }
        if let Some(g) = gap {
            m.inter_token.observe(g.as_secs_f64());
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let Ok(f) = self.fields.get_mut() else {
            return;
        };
        let latency = self.start.elapsed();
        let model = f.model.as_deref().unwrap_or("-");
        if let Some(m) = f.model.as_deref().and_then(|m| self.metrics.model(m)) {
            if !f.last_token.is_empty() {
                m.e2e.observe(latency.as_secs_f64());
                m.prompt_tokens.fetch_add(f.prompt_tokens as u64, Relaxed);
                m.generation_tokens
                    .fetch_add(f.completion_tokens as u64, Relaxed);
            }
        }
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        let ttft_ms = f.first_token.map_or(-1.0, |t| ms(t - self.start));
        let outcome = match (f.outcome, f.status) {
            (Some(o), _) => o,
            // The handler was dropped before it answered: the client left.
            (None, None) => "client_disconnected",
            (None, Some(s)) if s < 400 => "completed",
            (None, Some(_)) => "rejected",
        };
        let status = f.status.unwrap_or(0);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "kiln_serve::request",
                    id = %self.id,
                    method = %self.method,
                    path = %self.path,
                    model,
                    status,
                    prompt_tokens = f.prompt_tokens,
                    completion_tokens = f.completion_tokens,
                    ttft_ms,
                    latency_ms = ms(latency),
                    outcome,
                    "request"
                )
            };
        }
        if self.path.starts_with("/v1/") {
            line!(info);
        } else {
            line!(debug);
        }
    }
}

/// Middleware: a [`Record`] for every request (in its extensions), its status counted,
/// and its id returned as `x-request-id`.
pub async fn track(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let record: Record = Arc::new(RequestRecord::new(
        state.metrics.clone(),
        req.method().as_str(),
        req.uri().path(),
    ));
    req.extensions_mut().insert(record.clone());
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    record.set_status(status);
    state.metrics.count_status(status);
    if let Ok(v) = HeaderValue::from_str(&record.id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

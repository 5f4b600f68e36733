//! Prometheus `/metrics`: HTTP requests by status code, the engines' queue and KV-cache
//! gauges (read from their stats at scrape time), and per-model latency histograms and
//! token counters fed by each request's [`crate::request_log::RequestRecord`].
//! Hand-rolled text format: each server owns its registry (no process-global recorder), so
//! several servers in one process (tests) keep separate counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use kiln_engine::EngineHandle;

use crate::histogram::{Histogram, INTER_TOKEN_BUCKETS, LATENCY_BUCKETS};

type StatGetter = fn(&kiln_engine::StatsSnapshot) -> f64;
type HistGetter = fn(&ModelMetrics) -> &Histogram;
type CounterGetter = fn(&ModelMetrics) -> &AtomicU64;

#[derive(Debug)]
pub struct ModelMetrics {
    pub ttft: Histogram,
    pub inter_token: Histogram,
    pub e2e: Histogram,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self {
            ttft: Histogram::new(LATENCY_BUCKETS),
            inter_token: Histogram::new(INTER_TOKEN_BUCKETS),
            e2e: Histogram::new(LATENCY_BUCKETS),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    models: BTreeMap<String, ModelMetrics>,
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    pub fn new<'a>(models: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            by_status: Mutex::default(),
            models: models
                .into_iter()
                .map(|m| (m.to_string(), ModelMetrics::default()))
                .collect(),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelMetrics> {
        self.models.get(name)
    }

    pub fn count_status(&self, code: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// The whole exposition, engines' gauges read now.
    pub fn render(&self, engines: &[EngineHandle]) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "kiln_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        if let Ok(m) = self.by_status.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "kiln_http_requests_total{{code=\"{code}\"}} {n}");
            }
        }
        self.render_engines(&mut out, engines);
        self.render_models(&mut out);
        out
    }

    fn render_engines(&self, out: &mut String, engines: &[EngineHandle]) {
        let snaps: Vec<_> = engines
            .iter()
            .map(|e| (esc(e.model_name()), e.stats()))
            .collect();
        let gauges: [(&str, &str, &str, StatGetter); 8] = [
            (
                "kiln_num_requests_waiting",
                "gauge",
                "Requests queued for admission.",
                |s| s.waiting as f64,
            ),
            (
                "kiln_num_requests_running",
                "gauge",
                "Sequences the engine is stepping.",
                |s| s.running as f64,
            ),
            (
                "kiln_kv_cache_blocks_used",
                "gauge",
                "KV-cache blocks in use.",
                |s| s.kv_blocks_used as f64,
            ),
            (
                "kiln_kv_cache_blocks_total",
                "gauge",
                "KV-cache blocks in all.",
                |s| s.kv_blocks_total as f64,
            ),
            (
                "kiln_prefix_cache_hit_rate",
                "gauge",
                "Prompt tokens found in the prefix cache over those looked up.",
                |s| s.prefix_hit_rate,
            ),
            (
                "kiln_prefix_cache_queried_tokens_total",
                "counter",
                "Prompt tokens looked up in the prefix cache.",
                |s| s.prefix_queried_tokens as f64,
            ),
            (
                "kiln_prefix_cache_hit_tokens_total",
                "counter",
                "Prompt tokens found in the prefix cache.",
                |s| s.prefix_hit_tokens as f64,
            ),
            (
                "kiln_num_preemptions_total",
                "counter",
                "Sequences preempted for lack of KV blocks.",
                |s| s.preemptions as f64,
            ),
        ];
        for (name, kind, help, get) in gauges {
            header(out, name, kind, help);
            for (model, s) in &snaps {
                let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", get(s));
            }
        }
    }

    fn render_models(&self, out: &mut String) {
        let hists: [(&str, &str, HistGetter); 3] = [
            (
                "kiln_time_to_first_token_seconds",
                "Time from request to its first token.",
                |m| &m.ttft,
            ),
            (
                "kiln_inter_token_latency_seconds",
                "Time between consecutive tokens of a choice.",
                |m| &m.inter_token,
            ),
            (
                "kiln_e2e_request_latency_seconds",
                "Time from request to its last byte.",
                |m| &m.e2e,
            ),
        ];
        for (name, help, get) in hists {
            header(out, name, "histogram", help);
            for (model, m) in &self.models {
                get(m).write(out, name, &format!("model=\"{}\"", esc(model)));
            }
        }
        let counters: [(&str, &str, CounterGetter); 2] = [
            (
                "kiln_prompt_tokens_total",
                "Prompt tokens of admitted requests.",
                |m| &m.prompt_tokens,
            ),
            (
                "kiln_generation_tokens_total",
                "Tokens generated and returned.",
                |m| &m.generation_tokens,
            ),
        ];
        for (name, help, get) in counters {
            header(out, name, "counter", help);
            for (model, m) in &self.models {
                let _ = writeln!(
                    out,
                    "{name}{{model=\"{}\"}} {}",
                    esc(model),
                    get(m).load(Relaxed)
                );
            }
        }
    }
}

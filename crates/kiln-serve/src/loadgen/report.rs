//! Results of a run: per-level aggregates (built from request outcomes), a table for
//! humans and the same data as JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::client::ClientConfig;
use super::run::LoadConfig;
use super::stats::Percentiles;
use super::target::Endpoint;
use super::timing::RequestRecord;
use super::LoadgenError;

/// How many error messages a level keeps: enough to diagnose, few enough to read.
const KEPT_ERRORS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub shared_prefix_tokens: usize,
    pub requests: usize,
    pub seed: u64,
    pub max_seconds: f64,
    /// Whether the time bound cut the run short (cancelled or unstarted requests, or levels
    /// left out).
    pub time_bound_hit: bool,
    pub levels: Vec<LevelReport>,
}

impl LoadReport {
    pub fn new(client: &ClientConfig, cfg: &LoadConfig) -> LoadReport {
        LoadReport {
            url: client.url.to_string(),
            endpoint: client.endpoint,
            model: client.model.clone(),
            prompt_tokens: cfg.prompt_tokens,
            gen_tokens: client.gen_tokens,
            shared_prefix_tokens: cfg.shared_prefix_tokens,
            requests: cfg.requests,
            seed: cfg.seed,
            max_seconds: cfg.max_duration.as_secs_f64(),
            time_bound_hit: false,
            levels: vec![],
        }
    }
}

/// One concurrency level. Rates are over the level's wall time (first request sent → last
/// one done), so they include the ramp-up and the tail, as a user would see them.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    pub concurrency: usize,
    pub ok: usize,
    pub failed: usize,
    /// In flight when the time bound passed.
    pub cancelled: usize,
    /// Never sent because the time bound had passed.
    pub not_started: usize,
    pub wall_s: f64,
    /// Completion tokens of successful requests / wall time.
    pub output_tok_s: f64,
    pub requests_per_s: f64,
    pub completion_tokens: u64,
    pub completion_tokens_min: Option<u64>,
    pub completion_tokens_max: Option<u64>,
    /// Mean of `usage.prompt_tokens`, over requests whose server reported it.
    pub mean_prompt_tokens: Option<f64>,
    pub ttft_ms: Option<Percentiles>,
    pub itl_ms: Option<Percentiles>,
    pub latency_ms: Option<Percentiles>,
    /// The first few failures, as text.
    pub errors: Vec<String>,
}

impl LevelReport {
    pub fn from_outcomes(
        concurrency: usize,
        requests: usize,
        wall: Duration,
        outcomes: Vec<Result<RequestRecord, LoadgenError>>,
    ) -> LevelReport {
        let wall_s = wall.as_secs_f64();
        let sent = outcomes.len();
        let mut ok = vec![];
        let (mut failed, mut cancelled, mut errors) = (0, 0, vec![]);
        for o in outcomes {
            match o {
                Ok(r) => ok.push(r),
                Err(LoadgenError::Cancelled) => cancelled += 1,
                Err(e) => {
                    failed += 1;
                    if errors.len() < KEPT_ERRORS {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let tokens: Vec<u64> = ok.iter().map(|r| r.completion_tokens).collect();
        let completion_tokens: u64 = tokens.iter().sum();
        let prompts: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.prompt_tokens)
            .map(|p| p as f64)
            .collect();
        let itl: Vec<f64> = ok.iter().flat_map(|r| r.itl_ms.iter().copied()).collect();
        let rate = |x: f64| if wall_s > 0.0 { x / wall_s } else { 0.0 };
        LevelReport {
            concurrency,
            ok: ok.len(),
            failed,
            cancelled,
            not_started: requests.saturating_sub(sent),
            wall_s,
            output_tok_s: rate(completion_tokens as f64),
            requests_per_s: rate(ok.len() as f64),
            completion_tokens,
            completion_tokens_min: tokens.iter().copied().min(),
            completion_tokens_max: tokens.iter().copied().max(),
            mean_prompt_tokens: (!prompts.is_empty())
                .then(|| prompts.iter().sum::<f64>() / prompts.len() as f64),
            ttft_ms: Percentiles::of(&ok.iter().map(|r| ms(r.ttft)).collect::<Vec<_>>()),
            itl_ms: Percentiles::of(&itl),
            latency_ms: Percentiles::of(&ok.iter().map(|r| ms(r.latency)).collect::<Vec<_>>()),
            errors,
        }
    }
}

fn p3(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1}/{:.1}/{:.1}", p.p50, p.p95, p.p99),
        None => "-".to_string(),
    }
}

/// The human-readable report: one row per level, then any errors.
pub fn render_table(r: &LoadReport) -> String {
    let mut s = String::new();
    let prefix = match r.shared_prefix_tokens {
        0 => String::new(),
        n => format!(" (shared prefix ~{n})"),
    };
    let _ = writeln!(
        s,
        "{} ({}), model {:?}: ~{} prompt tokens{prefix}, {} new tokens, {} requests per level",
        r.url,
        r.endpoint.as_str(),
        r.model,
        r.prompt_tokens,
        r.gen_tokens,
        r.requests
    );
    let _ = writeln!(
        s,
        "{:>5} {:>5} {:>5} {:>6} {:>8} {:>10} {:>22} {:>20} {:>9} {:>9}",
        "conc",
        "ok",
        "fail",
        "cancel",
        "req/s",
        "out tok/s",
        "TTFT p50/p95/p99 ms",
        "ITL p50/p95/p99 ms",
        "prompt",
        "gen min"
    );
    for l in &r.levels {
        let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            s,
            "{:>5} {:>5} {:>5} {:>6} {:>8.2} {:>10.1} {:>22} {:>20} {:>9} {:>9}",
            l.concurrency,
            l.ok,
            l.failed,
            l.cancelled + l.not_started,
            l.requests_per_s,
            l.output_tok_s,
            p3(&l.ttft_ms),
            p3(&l.itl_ms),
            opt(l.mean_prompt_tokens),
            opt(l.completion_tokens_min.map(|t| t as f64))
        );
    }
    for l in r.levels.iter().filter(|l| !l.errors.is_empty()) {
        let _ = writeln!(
            s,
            "errors at concurrency {} (first {} of {}):",
            l.concurrency,
            l.errors.len(),
            l.failed
        );
        for e in &l.errors {
            let _ = writeln!(s, "  {e}");
        }
    }
    if r.time_bound_hit {
        let _ = writeln!(
            s,
            "stopped at the {:.0} s time bound (--max-seconds); `cancel` counts requests cut \
             off or never sent, and the rates leave them out",
            r.max_seconds
        );
    }
    s
}

//! The load itself: for each concurrency level, N requests with at most C in flight, under
//! one time bound for the whole run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::client::Client;
use super::prompts::PromptSet;
use super::report::{LevelReport, LoadReport};
use super::timing::RequestRecord;
use super::LoadgenError;

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Levels, run in order, each with `requests` requests.
    pub concurrency: Vec<usize>,
    pub requests: usize,
    pub prompt_tokens: usize,
    /// Tokens at the start of every prompt that all prompts share (0: none).
    pub shared_prefix_tokens: usize,
    /// After this, no request starts and in-flight ones are cancelled.
    pub max_duration: Duration,
    /// Seeds the prompts; a fresh seed keeps a server's prefix cache from a previous run
    /// out of the numbers.
    pub seed: u64,
}

impl LoadConfig {
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |m: &str| Err(LoadgenError::InvalidConfig(m.to_string()));
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            return bad("--concurrency needs one or more levels, each at least 1");
        }
        if self.requests == 0 {
            return bad("--requests must be at least 1");
        }
        if self.prompt_tokens == 0 {
            return bad("--prompt-tokens must be at least 1");
        }
        if self.shared_prefix_tokens >= self.prompt_tokens {
            return Err(LoadgenError::InvalidConfig(format!(
                "--shared-prefix-tokens ({}) must be below --prompt-tokens ({}) so that prompts differ",
                self.shared_prefix_tokens, self.prompt_tokens
            )));
        }
        if self.max_duration.is_zero() {
            return bad("--max-seconds must be above 0");
        }
        Ok(())
    }
}

/// Runs every level; `on_level` sees each level's report as soon as it is done (progress
/// for long runs). Levels after the time bound are left out and `time_bound_hit` is set.
pub async fn run_load(
    client: &Client,
    cfg: &LoadConfig,
    mut on_level: impl FnMut(&LevelReport),
) -> Result<LoadReport, LoadgenError> {
    cfg.validate()?;
    let prompts = Arc::new(PromptSet::new(
        cfg.prompt_tokens,
        cfg.shared_prefix_tokens,
        cfg.seed,
    ));
    let deadline = Instant::now() + cfg.max_duration;
    let mut report = LoadReport::new(client.config(), cfg);
    for (i, &concurrency) in cfg.concurrency.iter().enumerate() {
        if Instant::now() >= deadline {
            report.time_bound_hit = true;
            break;
        }
        // Each level gets its own prompt indices: prompts reused across levels would hit
        // the server's prefix cache and flatter the later levels.
        let first_index = (i * cfg.requests) as u64;
        let level = Level {
            concurrency,
            requests: cfg.requests,
            first_index,
            deadline,
        };
        let lvl = run_level(client, &prompts, &level).await;
        report.time_bound_hit |= lvl.cancelled + lvl.not_started > 0;
        on_level(&lvl);
        report.levels.push(lvl);
    }
    Ok(report)
}

#[derive(Clone, Copy)]
struct Level {
    concurrency: usize,
    requests: usize,
    first_index: u64,
    deadline: Instant,
}

/// C workers pull request indices from one counter until N are taken, so exactly C are in
/// flight until the tail of the level.
async fn run_level(client: &Client, prompts: &Arc<PromptSet>, l: &Level) -> LevelReport {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..l.concurrency.min(l.requests) {
        let (client, prompts, next, l) = (client.clone(), prompts.clone(), next.clone(), *l);
        workers.spawn(async move {
            let mut outcomes = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= l.requests || Instant::now() >= l.deadline {
                    break;
                }
                let prompt = prompts.prompt(l.first_index + i as u64);
                let deadline = tokio::time::Instant::from_std(l.deadline);
                let outcome = tokio::time::timeout_at(deadline, client.complete(&prompt))
                    .await
                    .unwrap_or(Err(LoadgenError::Cancelled));
                outcomes.push(outcome);
            }
            outcomes
        });
    }
    let mut outcomes: Vec<Result<RequestRecord, LoadgenError>> = vec![];
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(o) => outcomes.extend(o),
            // A worker can only end this way if a request future panicked inside reqwest;
            // its requests are lost, and the level reports them as not started.
            Err(e) => tracing::warn!("load worker ended abnormally: {e}"),
        }
    }
    LevelReport::from_outcomes(l.concurrency, l.requests, start.elapsed(), outcomes)
}

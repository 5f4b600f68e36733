//! The prefix-cache probe: how much a cached shared prefix cuts time to first token. One
//! request with a fresh prefix (uncached), then several with the same prefix and new
//! suffixes, one at a time so nothing but the cache differs between them.

use std::time::Duration;

use serde::Serialize;

use super::client::Client;
use super::prompts::PromptSet;
use super::stats::Percentiles;
use super::LoadgenError;

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub url: String,
    pub model: String,
    pub prompt_tokens: usize,
    pub shared_prefix_tokens: usize,
    pub gen_tokens: usize,
    /// TTFT of the first request with the prefix, which no server can have cached.
    pub uncached_ttft_ms: f64,
    /// TTFT of each later request, in order.
    pub cached_ttft_ms: Vec<f64>,
    pub cached: Percentiles,
    /// uncached / median cached: above 1 when the prefix cache helps.
    pub speedup: f64,
    /// `usage.prompt_tokens` of the uncached request, when reported.
    pub reported_prompt_tokens: Option<u64>,
}

/// Runs the probe. A warm-up request with an unrelated prompt goes first, so lazy
/// start-up work in the server is not billed to the uncached request. Any failed request
/// fails the probe: with so few samples a gap would make the comparison meaningless.
pub async fn prefix_cache_probe(
    client: &Client,
    prompt_tokens: usize,
    shared_prefix_tokens: usize,
    cached_requests: usize,
    seed: u64,
) -> Result<ProbeReport, LoadgenError> {
    if shared_prefix_tokens == 0 || shared_prefix_tokens >= prompt_tokens || cached_requests == 0 {
        return Err(LoadgenError::InvalidConfig(format!(
            "the prefix-cache probe needs 0 < --shared-prefix-tokens ({shared_prefix_tokens}) < \
             --prompt-tokens ({prompt_tokens}) and at least one cached request"
        )));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let warmup = PromptSet::new(prompt_tokens, 0, seed ^ 0x0077_A2A1_0000_0001);
    client.complete(&warmup.prompt(0)).await?;
    let prompts = PromptSet::new(prompt_tokens, shared_prefix_tokens, seed);
    let first = client.complete(&prompts.prompt(0)).await?;
    let mut cached_ttft_ms = vec![];
    for i in 1..=cached_requests as u64 {
        cached_ttft_ms.push(ms(client.complete(&prompts.prompt(i)).await?.ttft));
    }
    let cached = Percentiles::of(&cached_ttft_ms).ok_or(LoadgenError::NoTokens)?;
    let cfg = client.config();
    Ok(ProbeReport {
        url: cfg.url.to_string(),
        model: cfg.model.clone(),
        prompt_tokens,
        shared_prefix_tokens,
        gen_tokens: cfg.gen_tokens,
        uncached_ttft_ms: ms(first.ttft),
        speedup: ms(first.ttft) / cached.p50.max(1e-9),
        cached,
        cached_ttft_ms,
        reported_prompt_tokens: first.prompt_tokens,
    })
}

/// The probe as two lines for humans.
pub fn render_probe(r: &ProbeReport) -> String {
    format!(
        "{} model {:?}: ~{} prompt tokens, ~{} of them a shared prefix\n\
         TTFT uncached {:.1} ms, cached p50 {:.1} ms (min..max {:.1}..{:.1} over {}): {:.2}x\n",
        r.url,
        r.model,
        r.prompt_tokens,
        r.shared_prefix_tokens,
        r.uncached_ttft_ms,
        r.cached.p50,
        r.cached_ttft_ms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        r.cached_ttft_ms.iter().copied().fold(0.0, f64::max),
        r.cached_ttft_ms.len(),
        r.speedup
    )
}

//! `kiln bench serve`: wires the load generator in `kiln_serve::loadgen` to the command
//! line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, ValueEnum};
use kiln_serve::loadgen::{
    checked_url, prefix_cache_probe, render_probe, render_table, run_load, Client, ClientConfig,
    Endpoint, LoadConfig,
};

use crate::common::print_json;

/// Load-test an OpenAI-compatible server (kiln serve, llama.cpp's llama-server, vLLM, a
/// hosted API): output tok/s, requests/s, TTFT and inter-token latency p50/p95/p99.
///
/// Every level of --concurrency sends --requests streamed requests of ~--prompt-tokens
/// synthetic tokens, at most C at a time, asking for exactly --gen-tokens tokens
/// (temperature 0, ignore_eos). Example, against `llama-server -m M.gguf -np 8 --port 8080`:
/// `kiln bench serve --url http://127.0.0.1:8080 --model x --concurrency 1,8 --requests 16`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Server base URL (with or without a trailing /v1).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Model name sent in each request.
    #[arg(long)]
    pub model: String,
    /// Concurrency levels, run in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub concurrency: Vec<usize>,
    /// Requests per concurrency level.
    #[arg(long, default_value_t = 32)]
    pub requests: usize,
    /// Approximate prompt length in tokens (the server's usage reports the exact count).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to generate per request.
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Start every prompt with the same ~S tokens, so a prefix cache can hit.
    #[arg(long, default_value_t = 0)]
    pub shared_prefix_tokens: usize,
    /// Time bound for the whole run: afterwards no request starts and in-flight ones are
    /// cancelled.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
    /// Which OpenAI route to drive.
    #[arg(long, value_enum, default_value_t = EndpointArg::Completions)]
    pub endpoint: EndpointArg,
    /// Sent as a Bearer token.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allow a URL that is not loopback (127.0.0.0/8, ::1, localhost).
    #[arg(long)]
    pub allow_remote: bool,
    /// Do not send ignore_eos/min_tokens (hosted APIs reject unknown fields); requests may
    /// then end before --gen-tokens.
    #[arg(long)]
    pub no_eos_hints: bool,
    /// Prompt seed (default: from the clock, so a server's cache from an earlier run
    /// cannot hit).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Instead of the load test: one request with a fresh --shared-prefix-tokens prefix,
    /// then --probe-requests more with the same prefix, one at a time; reports both TTFTs.
    #[arg(long)]
    pub prefix_cache_probe: bool,
    /// Cached-prefix requests of --prefix-cache-probe.
    #[arg(long, default_value_t = 5)]
    pub probe_requests: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum EndpointArg {
    /// /v1/completions
    Completions,
    /// /v1/chat/completions
    Chat,
}

pub fn run(a: Args) -> Result<()> {
    let endpoint = match a.endpoint {
        EndpointArg::Completions => Endpoint::Completions,
        EndpointArg::Chat => Endpoint::Chat,
    };
    if !(a.max_seconds > 0.0 && a.max_seconds.is_finite()) {
        anyhow::bail!(
            "--max-seconds must be a positive number, got {}",
            a.max_seconds
        );
    }
    let url = checked_url(&a.url, endpoint, a.allow_remote)?;
    let seed = a.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let client = Client::new(ClientConfig {
        url,
        endpoint,
        model: a.model.clone(),
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        gen_tokens: a.gen_tokens,
        eos_hints: !a.no_eos_hints,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if a.prefix_cache_probe {
        let probe = rt.block_on(prefix_cache_probe(
            &client,
            a.prompt_tokens,
            a.shared_prefix_tokens,
            a.probe_requests,
            seed,
        ))?;
        return if a.json {
            print_json(&probe)
        } else {
            print!("{}", render_probe(&probe));
            Ok(())
        };
    }
    let cfg = LoadConfig {
        concurrency: a.concurrency.clone(),
        requests: a.requests,
        prompt_tokens: a.prompt_tokens,
        shared_prefix_tokens: a.shared_prefix_tokens,
        max_duration: Duration::from_secs_f64(a.max_seconds),
        seed,
    };
    let report = rt.block_on(run_load(&client, &cfg, |l| {
        eprintln!(
            "concurrency {}: {} ok, {} failed in {:.1} s",
            l.concurrency,
            l.ok,
            l.failed + l.cancelled,
            l.wall_s
        );
    }))?;
    if a.json {
        print_json(&report)?;
    } else {
        print!("{}", render_table(&report));
    }
    // A run in which nothing succeeded measured nothing: scripts must see it fail.
    if report.levels.iter().all(|l| l.ok == 0) {
        let first = report.levels.iter().flat_map(|l| l.errors.first()).next();
        anyhow::bail!(
            "no request succeeded{}",
            first.map_or(String::new(), |e| format!(" (first error: {e})"))
        );
    }
    Ok(())
}

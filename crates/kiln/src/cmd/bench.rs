//! `kiln bench`: prefill and decode throughput, measured the way `llama-bench` does
//! (pp: one batch of N prompt tokens from an empty cache; tg: N single-token steps).
//! `kiln bench serve` (bench_serve.rs) load-tests an OpenAI-compatible server instead.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};
use serde::Serialize;

use crate::common::{print_json, ModelArgs};

use super::bench_serve;

/// Measure prefill and decode tokens/s of a model (median and min-max over --repeats).
///
/// Compare with llama.cpp on the same file and thread count:
/// `llama-bench -m MODEL -t 2 -p 512 -n 128` next to `kiln --threads 2 bench --model MODEL`.
/// `kiln bench serve --help` load-tests an OpenAI-compatible server.
#[derive(ClapArgs, Debug)]
// `kiln bench --model M` keeps working as before; a subcommand takes none of these flags,
// and --model is required only without one.
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// A GGUF file or a Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, short = 'm', required = true)]
    pub model: Option<std::path::PathBuf>,
    /// Prompt tokens processed in one batch (0 skips the prefill test).
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated one at a time (0 skips the decode test).
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Measured repetitions (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Print {"prefill_tok_s": .., "decode_tok_s": .., ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    Serve(bench_serve::Args),
}

#[derive(Serialize)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

#[derive(Serialize)]
struct Report {
    model: String,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    prefill_tok_s: Option<f64>,
    decode_tok_s: Option<f64>,
    prefill: Option<Stats>,
    decode: Option<Stats>,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(BenchCommand::Serve(s)) = a.command {
        return bench_serve::run(s);
    }
    let model_args = ModelArgs {
        model: a.model.context("--model is required")?,
        adapter: None,
    };
    let m = model_args.load()?;
    let model: &dyn CausalLM = &m.model;
    let vocab = model.config().vocab_size as u32;
    let repeats = a.repeats.max(1);
    // Deterministic pseudo-random prompt, as llama-bench uses random tokens.
    let prompt: Vec<u32> = (0..a.prompt_tokens as u64)
        .map(|i| ((i.wrapping_mul(2654435761) >> 7) % vocab as u64) as u32)
        .collect();
    let prefill_once = || -> Result<f64> {
        let mut cache = model.new_cache();
        let b = Batch::from_tokens(&prompt, 0, LogitsMode::Last, &m.device)?;
        let t = Instant::now();
        model.forward(&b, &mut ForwardContext::with_cache(&mut cache))?;
        Ok(prompt.len() as f64 / t.elapsed().as_secs_f64())
    };
    let decode_once = || -> Result<f64> {
        let mut cache = model.new_cache();
        let mut tok = m.tokenizer.bos_token_id().unwrap_or(1);
        let t = Instant::now();
        for pos in 0..a.gen_tokens {
            let b = Batch::from_tokens(&[tok], pos, LogitsMode::Last, &m.device)?;
            let logits = model.forward(&b, &mut ForwardContext::with_cache(&mut cache))?;
            tok = kiln_model::sampling::argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(a.gen_tokens as f64 / t.elapsed().as_secs_f64())
    };
    let run_test = |f: &dyn Fn() -> Result<f64>| -> Result<Stats> {
        f()?;
        Ok(stats(
            (0..repeats).map(|_| f()).collect::<Result<Vec<_>>>()?,
        ))
    };
    let prefill = (a.prompt_tokens > 0)
        .then(|| run_test(&prefill_once))
        .transpose()?;
    let decode = (a.gen_tokens > 0)
        .then(|| run_test(&decode_once))
        .transpose()?;
    let r = Report {
        model: model_args.model.display().to_string(),
        threads: candle_core::utils::get_num_threads(),
        prompt_tokens: a.prompt_tokens,
        gen_tokens: a.gen_tokens,
        prefill_tok_s: prefill.as_ref().map(|s| s.median),
        decode_tok_s: decode.as_ref().map(|s| s.median),
        prefill,
        decode,
    };
    if a.json {
        return print_json(&r);
    }
    println!("model: {}  threads: {}", r.model, r.threads);
    if let Some(s) = &r.prefill {
        println!(
            "pp{:<5} {:>8.1} tok/s  (min {:.1}, max {:.1})",
            r.prompt_tokens, s.median, s.min, s.max
        );
    }
    if let Some(s) = &r.decode {
        println!(
            "tg{:<5} {:>8.1} tok/s  (min {:.1}, max {:.1})",
            r.gen_tokens, s.median, s.min, s.max
        );
    }
    Ok(())
}

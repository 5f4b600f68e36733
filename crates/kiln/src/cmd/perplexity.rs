//! `kiln perplexity`: llama.cpp-compatible perplexity of a text file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::{print_json, read_text, ModelArgs};

/// Perplexity of a text file, computed exactly as llama.cpp's `llama-perplexity`.
///
/// The text is tokenized whole, cut into non-overlapping windows of --ctx tokens (the first
/// token of each replaced by BOS when the model adds BOS), and the second half of each
/// window is scored. `kiln perplexity -c 512` and `llama-perplexity -c 512` on the same file
/// and model give directly comparable figures.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// UTF-8 text file to score.
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Window size in tokens.
    #[arg(long, short = 'c', default_value_t = 512)]
    pub ctx: usize,
    /// Score at most this many windows (default: all).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Print {"ppl": .., "tokens_scored": .., ...}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let text = read_text(&a.file)?;
    let m = a.model.load()?;
    let tokens = m.tokenizer.encode(&text, true, false)?;
    let bos = m
        .tokenizer
        .add_bos()
        .then(|| m.tokenizer.bos_token_id())
        .flatten();
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} chunks  ppl {msg}  [{elapsed} < {eta}]",
    )?);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let r = kiln_model::perplexity::perplexity(
        &m.model,
        &tokens,
        a.ctx,
        a.chunks,
        bos,
        &m.device,
        |i, n, ppl| {
            bar.set_length(n as u64);
            bar.set_position(i as u64);
            bar.set_message(format!("{ppl:.4}"));
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "PPL = {:.4} +/- {:.5} ({} tokens scored in {} chunks of {})",
            r.ppl, r.ppl_stderr, r.tokens_scored, r.chunks, r.ctx
        );
    }
    Ok(())
}

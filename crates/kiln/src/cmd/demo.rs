//! `kiln demo`: the whole load → tokenize → generate path on a tiny model built on the spot.

use anyhow::Result;
use clap::Args as ClapArgs;
use kiln_model::tiny::{write_tiny_llama, TinyLlamaSpec};
use kiln_model::{GenerateOptions, SamplingParams};

/// Build a tiny random-weight Llama as a Hugging Face directory, load it back and generate,
/// with no download. Checks that kiln works on this machine; the text is noise because the
/// weights are untrained (train one with `kiln train` once training lands, or pass a real
/// model to `kiln generate`).
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Where to write the model directory (default: a temporary directory).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Tokens to generate.
    #[arg(long, short = 'n', default_value_t = 48)]
    pub max_tokens: usize,
    /// Seed for the weights and the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| tmp.path().join("tiny-llama"));
    write_tiny_llama(
        &dir,
        &TinyLlamaSpec {
            seed: a.seed,
            ..Default::default()
        },
    )?;
    println!(
        "wrote a tiny Llama (2 layers, d=64, GQA 4/2 heads, byte-level tokenizer) to {}",
        dir.display()
    );
    let m = kiln_model::load(&dir, &crate::common::device())?;
    let chat = m.chat_prompt()?;
    let messages = [kiln_model::ChatMessage::new("user", "Hello, kiln!")];
    let prompt = chat.render(&messages, true)?;
    let ids = chat.encode(&m.tokenizer, &messages)?;
    println!(
        "prompt ({} tokens through the ChatML template): {prompt:?}",
        ids.len()
    );
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            seed: a.seed,
            ..Default::default()
        },
        stop: vec![],
        stop_at_eos: true,
        sliding_window: false,
    };
    let g = kiln_model::generate(&m.model, &m.tokenizer, &ids, &opts, &m.device, |_| {})?;
    println!(
        "generated {} tokens (untrained weights, so noise): {:?}",
        g.token_ids.len(),
        g.text
    );
    println!(
        "prefill {:.0} tok/s, decode {:.0} tok/s; finish: {:?}",
        g.timings.prefill_tok_s, g.timings.decode_tok_s, g.finish_reason
    );
    Ok(())
}

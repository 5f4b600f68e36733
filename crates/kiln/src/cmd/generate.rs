//! `kiln generate`: continue a prompt, streaming text to stdout.

use std::io::Write;

use anyhow::Result;
use clap::Args as ClapArgs;
use kiln_model::{GenerateOptions, ModelError};

use crate::common::{print_json, ModelArgs, SamplingArgs};

/// Continue a text prompt with a model, streaming the text as it is generated.
///
/// The prompt is used as is (no chat template; see `kiln chat`). Special-token text such as
/// `<|im_start|>` in the prompt becomes the special token. With --json, one JSON object with
/// the token ids, the text and timings is printed at the end instead.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt text.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Maximum number of tokens to generate.
    #[arg(long, short = 'n', default_value_t = 128)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Keep generating through end-of-sequence tokens until --max-tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Keep generating past the model's context: when it is full, continue from the newest
    /// half of the text (for short-context models such as `kiln train` runs). Without it,
    /// prompt + --max-tokens over the context is an error.
    #[arg(long)]
    pub sliding_window: bool,
    /// Print one JSON object (token ids, text, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let params = a.sampling.params();
    params.validate()?;
    let m = a.model.load()?;
    let prompt_ids = m.tokenizer.encode(&a.prompt, true, true)?;
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: params,
        stop: a.sampling.stop.clone(),
        stop_at_eos: !a.ignore_eos,
        sliding_window: a.sliding_window,
    };
    let mut out = std::io::stdout();
    let json = a.json;
    let on_text = |t: &str| {
        if !json {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        }
    };
    let g = kiln_model::generate(
        &m.model,
        &m.tokenizer,
        &prompt_ids,
        &opts,
        &m.device,
        on_text,
    )
    .map_err(|e| match e {
        ModelError::ContextOverflow { .. } => {
            anyhow::anyhow!("{e} (--sliding-window generates past it)")
        }
        e => e.into(),
    })?;
    if json {
        print_json(&g)?;
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens, {:.1} tok/s prefill; {} generated, {:.1} tok/s decode; finish: {:?}]",
            g.timings.prompt_tokens,
            g.timings.prefill_tok_s,
            g.timings.generated_tokens,
            g.timings.decode_tok_s,
            g.finish_reason
        );
    }
    Ok(())
}

//! `kiln tokenize`: print the token ids of a text.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args as ClapArgs;

use crate::common::{print_json, read_text, ModelArgs};

/// Print the token ids of a text with a model's tokenizer.
///
/// Special-token text (e.g. `<|im_start|>`) is parsed as the special token; BOS is added when
/// the model adds one (like llama.cpp's `llama-tokenize`).
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to tokenize.
    #[arg(long, conflicts_with = "file")]
    pub text: Option<String>,
    /// A UTF-8 file to tokenize.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Do not add BOS even if the model adds one.
    #[arg(long)]
    pub no_bos: bool,
    /// Tokenize special-token text as ordinary characters.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Print {"ids": [...], "tokens": [...], "count": N}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let text = match (&a.text, &a.file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => read_text(f)?,
        _ => bail!("give exactly one of --text or --file"),
    };
    let (tok, _) = kiln_model::load_tokenizer(&a.model.model)?;
    let ids = tok.encode(&text, !a.no_bos, !a.no_parse_special)?;
    if a.json {
        let tokens: Vec<String> = ids
            .iter()
            .map(|&i| tok.id_to_token(i).unwrap_or_default())
            .collect();
        print_json(&serde_json::json!({"ids": ids, "tokens": tokens, "count": ids.len()}))?;
    } else {
        let s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        println!("{}", s.join(" "));
    }
    Ok(())
}

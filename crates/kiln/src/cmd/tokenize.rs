//! `kiln tokenize`: print the token ids of a text, or of a conversation as the model's chat
//! prompt makes it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;

use crate::common::{print_json, read_text, ModelArgs};

/// Print the token ids of a text with a model's tokenizer.
///
/// Special-token text (e.g. `<|im_start|>`) is parsed as the special token; BOS is added when
/// the model adds one (like llama.cpp's `llama-tokenize`). With --chat FILE (a JSON list of
/// {"role", "content"} messages, or a string: one user message), the ids are the prompt
/// `kiln chat`, `kiln serve` and kiln's evaluators give the model for that conversation,
/// through its chat template (ChatML or plain text for a model without one).
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to tokenize.
    #[arg(long, conflicts_with = "file")]
    pub text: Option<String>,
    /// A UTF-8 file to tokenize.
    #[arg(long, conflicts_with = "chat")]
    pub file: Option<PathBuf>,
    /// A JSON file of chat messages to tokenize through the model's chat prompt.
    #[arg(long, conflicts_with_all = ["text", "no_bos", "no_parse_special"])]
    pub chat: Option<PathBuf>,
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
    if [a.text.is_some(), a.file.is_some(), a.chat.is_some()]
        .iter()
        .filter(|&&x| x)
        .count()
        != 1
    {
        bail!("give exactly one of --text, --file or --chat");
    }
    let (tok, template) = kiln_model::load_tokenizer(&a.model.model)?;
    let ids = match (&a.text, &a.file, &a.chat) {
        (Some(t), None, None) => tok.encode(t, !a.no_bos, !a.no_parse_special)?,
        (None, Some(f), None) => tok.encode(&read_text(f)?, !a.no_bos, !a.no_parse_special)?,
        (None, None, Some(f)) => {
            let v: serde_json::Value = serde_json::from_str(&read_text(f)?)
                .with_context(|| format!("{}: not JSON", f.display()))?;
            let messages = kiln_model::chat::prompt_messages(&v)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            kiln_model::ChatPrompt::new(template.as_ref(), &tok)?.encode(&tok, &messages)?
        }
        _ => bail!("give exactly one of --text, --file or --chat"),
    };
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

//! `kiln tokenizer train`: train a tokenizer on text files.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_train::{TokenizerKind, TokenizerSpec, ENDOFTEXT};

use crate::common::print_json;

/// Train tokenizers.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Train(TrainArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    /// Byte-level BPE (GPT-2's scheme): any text encodes, merges learned from the corpus.
    Bpe,
    /// One token per character of the corpus (nanoGPT's shakespeare_char).
    Char,
}

/// Train a byte-level BPE or character tokenizer and write a Hugging Face tokenizer.json.
///
/// The output loads in Hugging Face tokenizers/transformers and in kiln. Decoding gives back
/// the encoded text exactly: no normalization, no prefix space. BPE starts from the 256 byte
/// tokens plus the special tokens, then learns merges up to --vocab-size. The character
/// tokenizer's vocabulary is the sorted set of characters in the corpus (ids in code-point
/// order), then the special tokens; characters it never saw cannot be encoded.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Examples:\n  \
    kiln tokenizer train --input data/*.txt --vocab-size 8192 --out tokenizer.json\n  \
    kiln tokenizer train --kind char --input shakespeare.txt --out char.json")]
pub struct TrainArgs {
    /// UTF-8 text files to train on.
    #[arg(long, short = 'i', num_args = 1.., required = true, value_name = "FILES")]
    pub input: Vec<PathBuf>,
    /// Vocabulary size, special tokens included. Required for bpe (at least 256 + the special
    /// tokens); for char an optional upper bound.
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// Where to write tokenizer.json.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Tokenizer type.
    #[arg(long, value_enum, default_value_t = Kind::Bpe)]
    pub kind: Kind,
    /// A special token (repeatable). Default: <|endoftext|> for bpe, none for char. BPE
    /// special tokens must be printable ASCII.
    #[arg(long = "special", value_name = "TOKEN", conflicts_with = "no_special")]
    pub special: Vec<String>,
    /// No special tokens at all.
    #[arg(long)]
    pub no_special: bool,
    /// BPE: never merge a pair seen fewer times than this.
    #[arg(long, default_value_t = 0)]
    pub min_frequency: u64,
    /// Print {"out", "kind", "vocab_size", "special_tokens", "files", "corpus_bytes"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Train(t) => train(t),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let kind = match a.kind {
        Kind::Bpe => TokenizerKind::Bpe,
        Kind::Char => TokenizerKind::Char,
    };
    if kind == TokenizerKind::Bpe && a.vocab_size.is_none() {
        bail!("--vocab-size is required for --kind bpe (e.g. --vocab-size 8192)");
    }
    let special_tokens = if a.no_special {
        vec![]
    } else if a.special.is_empty() && kind == TokenizerKind::Bpe {
        vec![ENDOFTEXT.to_string()]
    } else {
        a.special.clone()
    };
    let spec = TokenizerSpec {
        kind,
        vocab_size: a.vocab_size,
        special_tokens,
        min_frequency: a.min_frequency,
    };
    // BPE training reports no progress of its own; a spinner shows it is alive.
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")?);
    if a.json {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    spinner.set_message(format!(
        "training a {} tokenizer on {} files",
        kind.name(),
        a.input.len()
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let trained = kiln_train::train_tokenizer(&spec, &a.input);
    spinner.finish_and_clear();
    let trained = trained?;
    kiln_train::save_tokenizer(&trained.tokenizer, &a.out)?;
    if a.json {
        print_json(&serde_json::json!({
            "out": a.out,
            "kind": match kind { TokenizerKind::Bpe => "bpe", TokenizerKind::Char => "char" },
            "vocab_size": trained.vocab_size,
            "special_tokens": spec.special_tokens,
            "files": trained.files,
            "corpus_bytes": trained.corpus_bytes,
        }))?;
    } else {
        println!(
            "wrote {}: {} tokenizer, {} tokens ({} special) from {} files ({:.1} MB)",
            a.out.display(),
            kind.name(),
            trained.vocab_size,
            spec.special_tokens.len(),
            trained.files,
            trained.corpus_bytes as f64 / 1e6
        );
    }
    Ok(())
}

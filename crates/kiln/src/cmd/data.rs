//! `kiln data prepare`: tokenize text files into train/val token shards; `kiln data prefs`
//! (cmd/prefs.rs): preference pairs from a model's samples.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_train::{Dtype, PrepareOptions};

use crate::common::print_json;

/// Prepare training data: token shards for pretraining, preference pairs for DPO.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Prepare(PrepareArgs),
    Prefs(crate::cmd::prefs::PrefsArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum DtypeArg {
    /// u16 when the vocabulary has at most 65,536 ids, else u32.
    Auto,
    U16,
    U32,
}

/// Tokenize text files into token shards for `kiln train`.
///
/// Writes OUT/train.bin and OUT/val.bin (raw little-endian token ids, as nanoGPT's .bin
/// files), OUT/tokenizer.json (a copy) and OUT/manifest.json (dtype, vocabulary size,
/// tokenizer SHA-256, token counts per split, source files). The files are encoded in the
/// order given and concatenated; the last --val-fraction of all tokens is the validation
/// split. Files are written atomically and the manifest last, so an interrupted run never
/// leaves a directory that looks complete.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Example:\n  \
    kiln data prepare --tokenizer tokenizer.json --input data/*.txt --out data/shards")]
pub struct PrepareArgs {
    /// A tokenizer.json, or a model directory containing one.
    #[arg(long, short = 't')]
    pub tokenizer: PathBuf,
    /// UTF-8 text files to tokenize.
    #[arg(long, short = 'i', num_args = 1.., required = true, value_name = "FILES")]
    pub input: Vec<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// Fraction of the tokens for the validation split, in [0, 1).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Token id width on disk.
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// A token appended after each file (e.g. "<|endoftext|>"), so documents stay apart.
    #[arg(long, value_name = "TOKEN")]
    pub separator: Option<String>,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Prepare(p) => prepare(p),
        Command::Prefs(p) => crate::cmd::prefs::run(p),
    }
}

fn prepare(a: PrepareArgs) -> Result<()> {
    let tokenizer = if a.tokenizer.is_dir() {
        a.tokenizer.join("tokenizer.json")
    } else {
        a.tokenizer.clone()
    };
    let opts = PrepareOptions {
        val_fraction: a.val_fraction,
        dtype: match a.dtype {
            DtypeArg::Auto => None,
            DtypeArg::U16 => Some(Dtype::U16),
            DtypeArg::U32 => Some(Dtype::U32),
        },
        separator: a.separator.clone(),
    };
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "tokenizing {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} [{elapsed} < {eta}]",
    )?);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let m = kiln_train::prepare(&tokenizer, &a.input, &a.out, &opts, &mut |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    });
    bar.finish_and_clear();
    let m = m?;
    if a.json {
        print_json(&m)?;
    } else {
        println!(
            "wrote {}: {} train + {} val tokens ({}, vocabulary {}) from {} files",
            a.out.display(),
            m.train.tokens,
            m.val.tokens,
            m.dtype.name(),
            m.vocab_size,
            m.sources.len()
        );
    }
    Ok(())
}

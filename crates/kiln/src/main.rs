//! `kiln`: the LLM engineering loop in one binary. This file only wires subcommands to the
//! library crates.

mod allocator;
mod cmd;
mod common;
mod train_bar;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Train, fine-tune, evaluate, serve and run LLMs from one binary",
    long_about = "kiln is the LLM engineering loop in one binary: it trains GPTs from scratch, \
fine-tunes (LoRA, QLoRA, DPO), evaluates, serves an OpenAI-compatible API and retrieves over \
documents, for Llama-family models (Llama 2/3, SmolLM2, Qwen2, Mistral) from a GGUF file or a \
Hugging Face directory, on the CPU.\n\nExamples:\n  kiln quickstart   (train a small GPT on Shakespeare and sample from it; no download)\n  kiln generate --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"Once upon a time\"\n  kiln chat --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"What is the capital of France?\""
)]
struct Cli {
    /// Worker threads for matrix kernels (default: all cores).
    #[arg(long, global = true, env = "KILN_THREADS")]
    threads: Option<usize>,
    /// Log level filter (e.g. info, debug, kiln_model=trace).
    #[arg(long, global = true, default_value = "warn", env = "KILN_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Quickstart(cmd::quickstart::Args),
    Demo(cmd::demo::Args),
    Generate(cmd::generate::Args),
    Chat(cmd::chat::Args),
    Tokenize(cmd::tokenize::Args),
    Perplexity(cmd::perplexity::Args),
    Bench(cmd::bench::Args),
    Info(cmd::info::Args),
    Pull(cmd::pull::Args),
    Tokenizer(cmd::tokenizer::Args),
    Data(cmd::data::Args),
    Train(cmd::train::Args),
    Finetune(cmd::finetune::Args),
    Eval(cmd::eval::Args),
    Rag(cmd::rag::Args),
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    // A server logs one line per request unless told otherwise.
    let log = match (&cli.command, cli.log.as_str()) {
        (Command::Serve(_), "warn") => "warn,kiln_serve=info",
        (_, log) => log,
    };
    common::init(cli.threads, log);
    let result = match cli.command {
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Perplexity(a) => cmd::perplexity::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Pull(a) => cmd::pull::run(a),
        Command::Tokenizer(a) => cmd::tokenizer::run(a),
        Command::Data(a) => cmd::data::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Finetune(a) => cmd::finetune::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Rag(a) => cmd::rag::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `kiln chat`: multi-turn chat through the model's own chat template.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use kiln_model::{ChatMessage, GenerateOptions};

use crate::common::{ModelArgs, SamplingArgs};

/// Chat with a model through its chat template (ChatML when the model has none).
///
/// A base model with neither a template nor ChatML's tokens (a `kiln train` run) continues
/// the conversation as plain text, one message per line, past its context if need be.
///
/// Without --prompt, reads user turns from stdin until EOF or `/exit`; `/reset` clears the
/// conversation. With --prompt, answers once and exits.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt for the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Answer this one message and exit.
    #[arg(long, short = 'p')]
    pub prompt: Option<String>,
    /// Maximum tokens per reply.
    #[arg(long, short = 'n', default_value_t = 512)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: Args) -> Result<()> {
    let params = a.sampling.params();
    params.validate()?;
    let m = a.model.load()?;
    let chat = m.chat_prompt()?;
    if !chat.is_chat() {
        eprintln!(
            "note: {} has no chat template and no ChatML tokens (a base model): each \
             message is continued as plain text, as `kiln generate` would",
            a.model.model.display()
        );
    }
    let mut messages: Vec<ChatMessage> = a
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.clone()))
        .collect();
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: params,
        stop: a.sampling.stop.clone(),
        stop_at_eos: true,
        sliding_window: false,
    };
    let reply = |messages: &mut Vec<ChatMessage>, user: String| -> Result<()> {
        messages.push(ChatMessage::new("user", user));
        let mut out = std::io::stdout();
        let on_text = |t: &str| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        };
        let ids = chat.encode(&m.tokenizer, messages)?;
        // A base model's context may be short (64 characters for shakespeare-char), so
        // its plain-text transcript slides the window.
        let opts = GenerateOptions {
            sliding_window: !chat.is_chat(),
            ..opts.clone()
        };
        let g = kiln_model::generate(&m.model, &m.tokenizer, &ids, &opts, &m.device, on_text)?;
        println!();
        messages.push(ChatMessage::new("assistant", g.text.trim().to_string()));
        Ok(())
    };
    if let Some(p) = a.prompt {
        return reply(&mut messages, p);
    }
    let stdin = std::io::stdin();
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                continue;
            }
            _ => reply(&mut messages, line.to_string())?,
        }
    }
    Ok(())
}

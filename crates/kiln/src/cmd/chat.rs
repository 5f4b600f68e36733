//! `kiln chat`: multi-turn chat through the model's own chat template.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use kiln_model::{ChatMessage, ChatTemplate, GenerateOptions};

use crate::common::{ModelArgs, SamplingArgs};

/// Chat with a model through its chat template (ChatML when the model has none).
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
    let fallback;
    let template = match &m.chat_template {
        Some(t) => t,
        None => {
            fallback = ChatTemplate::new(kiln_model::chat_template::CHATML, "", "")?;
            &fallback
        }
    };
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
    };
    let reply = |messages: &mut Vec<ChatMessage>, user: String| -> Result<()> {
        messages.push(ChatMessage::new("user", user));
        let text = template.render(messages, true)?;
        // The template writes BOS itself where the model wants one.
        let ids = m.tokenizer.encode(&text, false, true)?;
        let mut out = std::io::stdout();
        let g = kiln_model::generate(&m.model, &m.tokenizer, &ids, &opts, &m.device, |t| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        })?;
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

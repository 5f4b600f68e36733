//! `kiln info`: what a model file is.

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::common::{print_json, ModelArgs};

/// Show a model's architecture, parameter count, tensor types, context length and whether it
/// has a chat template.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let m = a.model.load()?;
    let i = &m.info;
    if a.json {
        return print_json(i);
    }
    let c = &i.config;
    println!("path:          {}", i.path.display());
    println!("format:        {:?}", i.format);
    println!("architecture:  {}", i.architecture);
    println!(
        "parameters:    {} ({:.1}M)",
        i.parameters,
        i.parameters as f64 / 1e6
    );
    let types: Vec<String> = i
        .tensor_types
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect();
    println!("tensor types:  {}", types.join(", "));
    println!(
        "layers:        {}  hidden {}  ffn {}",
        c.num_layers, c.hidden_size, c.intermediate_size
    );
    println!(
        "heads:         {} query / {} kv, head dim {}",
        c.num_heads, c.num_kv_heads, c.head_dim
    );
    println!("vocab:         {}", i.vocab_size);
    println!("context:       {}", i.context_length);
    println!("rope theta:    {}", c.rope.theta);
    println!("tied embed:    {}", c.tie_word_embeddings);
    println!(
        "chat template: {}",
        if i.has_chat_template { "yes" } else { "no" }
    );
    Ok(())
}

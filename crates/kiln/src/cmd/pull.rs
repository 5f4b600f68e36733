//! `kiln pull`: download a model from the Hugging Face Hub into the standard HF cache.

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use hf_hub::api::tokio::ApiBuilder;
use hf_hub::{Repo, RepoType};

/// Download a model from the Hugging Face Hub (REPO or REPO@REVISION) into the Hugging Face
/// cache (~/.cache/huggingface/hub, or $HF_HOME). Fetches config.json, tokenizer files and
/// safetensors weights (following a shard index), or the GGUF named by --file. Set HF_TOKEN
/// for gated models. Prints the local directory to pass as --model.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Repository id, optionally with a revision: `HuggingFaceTB/SmolLM2-135M-Instruct@main`.
    pub repo: String,
    /// Fetch this one file instead (e.g. a .gguf in a GGUF repository).
    #[arg(long)]
    pub file: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the download runtime")?
        .block_on(pull(a))
}

async fn pull(a: Args) -> Result<()> {
    let (id, rev) = match a.repo.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (a.repo.clone(), "main".to_string()),
    };
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("setting up the Hugging Face Hub client")?;
    let repo = api.repo(Repo::with_revision(id.clone(), RepoType::Model, rev));
    let fetch = |f: String| {
        let (repo, id) = (&repo, &id);
        async move {
            repo.get(&f)
                .await
                .with_context(|| format!("downloading {f} from {id} (is the Hub reachable?)"))
        }
    };
    if let Some(f) = a.file {
        println!("{}", fetch(f).await?.display());
        return Ok(());
    }
    let config = fetch("config.json".into()).await?;
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        if let Err(e) = fetch(f.into()).await {
            if f == "tokenizer.json" {
                return Err(e);
            }
        }
    }
    match fetch("model.safetensors.index.json".into()).await {
        Ok(index) => {
            let text = std::fs::read_to_string(&index)?;
            let json: serde_json::Value = serde_json::from_str(&text)?;
            let mut shards: Vec<String> = json["weight_map"]
                .as_object()
                .context("index has no weight_map")?
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            shards.sort();
            shards.dedup();
            for s in shards {
                fetch(s).await?;
            }
        }
        Err(_) => {
            fetch("model.safetensors".into()).await?;
        }
    }
    let dir = config.parent().context("cache path has no parent")?;
    println!("{}", dir.display());
    Ok(())
}

//! `kiln rag`: build and query a retrieval index (BM25 + dense vectors over chunks).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_rag::index::read_manifest;
use kiln_rag::loaders::load_paths;
use kiln_rag::{
    delete_documents, index_documents, Chunker, Embedder, IndexOptions, Mode, RagIndex, Retriever,
};
use serde_json::json;

/// Retrieval: index documents (BM25 + sentence embeddings) and query them.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: RagCommand,
}

#[derive(Subcommand, Debug)]
pub enum RagCommand {
    Index(IndexArgs),
    Query(QueryArgs),
    Delete(DeleteArgs),
}

/// Add or update documents in an index (created if needed): files are chunked, embedded
/// and indexed for BM25; a document whose id and text are already indexed is left as is.
#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Inputs: .txt, .md, .html, .jsonl ({\"id\",\"title\",\"text\",\"meta\"} a \
    line), dictd dictionaries (NAME.dict[.dz] with NAME.index), or directories of them. \
    Unreadable files are listed and skipped.\n\nExample:\n  kiln rag index --input docs/ \
    --index runs/rag-index --chunker sentences:200"
)]
pub struct IndexArgs {
    /// Files or directories to index.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// The index directory.
    #[arg(long)]
    pub index: PathBuf,
    /// tokens:SIZE:OVERLAP, sentences:SIZE or markdown:SIZE (tokens of the embedder's
    /// tokenizer; default sentences:200). An existing index keeps its own.
    #[arg(long)]
    pub chunker: Option<String>,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
    /// Chunks per embedder batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Documents embedded between commits (a killed run keeps every commit made).
    #[arg(long, default_value_t = 1000)]
    pub commit_every: usize,
}

#[derive(ClapArgs, Debug)]
pub struct EmbedderArgs {
    /// A sentence-transformers model directory (default: the index's own, else
    /// $KILN_ASSETS/all-MiniLM-L6-v2).
    #[arg(long)]
    pub embedder: Option<PathBuf>,
}

impl EmbedderArgs {
    fn load(&self, index: &Path) -> Result<Embedder> {
        let dir = match &self.embedder {
            Some(p) => p.clone(),
            None => read_manifest(index)
                .ok()
                .flatten()
                .and_then(|m| m.embedder.path)
                .filter(|p| p.is_dir())
                .unwrap_or_else(default_embedder),
        };
        Embedder::load(&dir).with_context(|| {
            format!(
                "loading the embedder (fetch all-MiniLM-L6-v2 with scripts/fetch-assets.sh, or \
                 pass --embedder DIR)"
            )
        })
    }
}

fn default_embedder() -> PathBuf {
    let assets = std::env::var_os("KILN_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kiln/assets")
        });
    assets.join("all-MiniLM-L6-v2")
}

/// Retrieve the chunks that best match a query.
#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Example:\n  kiln rag query --index runs/rag-index --query \"what is a \
    daemon\" --mode hybrid --top-k 5 --json"
)]
pub struct QueryArgs {
    /// The index directory (`kiln rag index`).
    #[arg(long)]
    pub index: PathBuf,
    /// The question or keywords.
    #[arg(long)]
    pub query: String,
    /// Chunks to return.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// bm25, dense, hybrid (reciprocal rank fusion, k = 60) or weighted[:ALPHA] (min-max
    /// scaled scores, ALPHA on dense, default 0.5).
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Only documents whose metadata has KEY=VALUE (repeatable; all must hold).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// Print {"results": [{"doc_id", "chunk_id", "score", "text", ...}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
}

/// Remove documents (their chunks, vectors and BM25 entries) by id.
#[derive(ClapArgs, Debug)]
pub struct DeleteArgs {
    /// The index directory.
    #[arg(long)]
    pub index: PathBuf,
    /// Document ids (repeatable).
    #[arg(long = "id", required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        RagCommand::Index(a) => index(a),
        RagCommand::Query(a) => query(a),
        RagCommand::Delete(a) => delete(a),
    }
}

fn index(a: IndexArgs) -> Result<()> {
    let chunker = a
        .chunker
        .as_deref()
        .map(Chunker::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let embedder = a.embedder.load(&a.index)?;
    let loaded = load_paths(&a.input)?;
    for (path, why) in &loaded.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    let n = loaded.documents.len();
    eprintln!(
        "read {n} documents ({} inputs skipped) from {} path(s)",
        loaded.skipped.len(),
        a.input.len()
    );
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{prefix:>8} {bar:30} {pos}/{len} docs [{elapsed} < {eta}, {per_sec}]",
    )?);
    bar.set_prefix("embed");
    let start = Instant::now();
    let opts = IndexOptions {
        chunker,
        batch_size: a.batch_size,
        commit_every: a.commit_every,
    };
    let report = index_documents(
        &a.index,
        &embedder,
        loaded.documents,
        &opts,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    for (path, why) in &report.skipped {
        eprintln!("skipped in {}: {why}", path.display());
    }
    let embedded = report.added + report.updated;
    println!(
        "{}: generation {}, {} documents, {} chunks ({} added, {} updated, {} unchanged; {} \
         chunks embedded in {secs:.1} s, {:.1} docs/s)",
        a.index.display(),
        report.generation.unwrap_or(0),
        report.documents,
        report.chunks,
        report.added,
        report.updated,
        report.unchanged,
        report.chunks_embedded,
        embedded as f64 / secs.max(1e-9),
    );
    Ok(())
}

fn query(a: QueryArgs) -> Result<()> {
    let mode: Mode = a.mode.parse().map_err(anyhow::Error::msg)?;
    for f in &a.filters {
        if !f.contains('=') {
            bail!("--filter '{f}': expected KEY=VALUE");
        }
    }
    let index = RagIndex::open(&a.index)?;
    let embedder = a.embedder.load(&a.index)?;
    let retriever = Retriever::new(&index, &embedder)?;
    let start = Instant::now();
    let hits = retriever.search(&a.query, mode, a.top_k, &a.filters)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let results: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            let c = &index.chunks[h.row];
            let d = index.doc_of(h.row);
            json!({
                "doc_id": c.doc_id, "chunk_id": c.chunk_id, "score": h.score, "text": c.text,
                "title": d.title, "source": d.source, "start": c.start, "end": c.end,
            })
        })
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"results": results, "ms": ms}))?
        );
        return Ok(());
    }
    for (i, r) in results.iter().enumerate() {
        let text = r["text"].as_str().unwrap_or_default().replace('\n', " ");
        let short: String = text.chars().take(160).collect();
        println!(
            "{:>2}. {:.4}  {}  [{}]\n    {short}{}",
            i + 1,
            r["score"].as_f64().unwrap_or_default(),
            r["chunk_id"].as_str().unwrap_or_default(),
            r["title"].as_str().unwrap_or_default(),
            if text.chars().count() > 160 {
                "…"
            } else {
                ""
            }
        );
    }
    eprintln!("{} results in {ms:.1} ms ({:?})", results.len(), mode);
    Ok(())
}

fn delete(a: DeleteArgs) -> Result<()> {
    let embedder = a.embedder.load(&a.index)?;
    let (report, missing) = delete_documents(&a.index, &embedder, &a.ids)?;
    for m in &missing {
        eprintln!("not in the index: {m}");
    }
    println!(
        "{}: deleted {}; generation {}, {} documents, {} chunks",
        a.index.display(),
        report.deleted,
        report.generation.unwrap_or(0),
        report.documents,
        report.chunks
    );
    Ok(())
}

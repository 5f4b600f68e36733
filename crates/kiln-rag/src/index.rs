//! The index directory: documents, their chunks, one vector per chunk and a BM25 index,
//! committed together as a generation.
//!
//! ```text
//! DIR/manifest.json      which generation is current, the embedder (name, sha256, width),
//!                        the chunker, counts
//! DIR/gen-N/docs.jsonl   one line per document (id, title, source, offset, meta, sha256,
//!                        its chunk rows)
//! DIR/gen-N/chunks.jsonl one line per chunk (ids, byte span, text)
//! DIR/gen-N/vectors.f32  one unit vector per chunk, in chunk order
//! DIR/gen-N/bm25/        tantivy
//! DIR/gen-N/hnsw.bin     the HNSW graph of the vectors, once `--hnsw` has built it
//! ```
//!
//! A commit writes generation N+1 in full beside N, syncs it, then replaces manifest.json
//! by rename: a crash at any point leaves the manifest naming a complete generation, and
//! the next commit clears what the crash left. Documents keep their vectors across commits
//! (only new or changed text is embedded), so re-indexing the same input changes nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bm25::{Bm25, Bm25Doc};
use crate::chunk::Chunker;
use crate::document::Document;
use crate::error::{io_err, RagError, Result};
use crate::vectors::FlatVectors;

pub const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderId {
    pub name: String,
    pub sha256: String,
    pub dim: usize,
    /// Where it was loaded from when the index was built (the default for queries).
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub generation: u64,
    pub embedder: EmbedderId,
    pub chunker: Chunker,
    pub documents: usize,
    pub chunks: usize,
}

/// A document as the index keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocEntry {
    pub id: String,
    pub title: String,
    pub source: PathBuf,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Of the title and text: an unchanged document is not chunked or embedded again.
    pub sha256: String,
    /// Its chunks' rows: `first..first + count`.
    pub first: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub chunk_id: String,
    pub doc_id: String,
    /// Byte span in the document's text.
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A document's content hash (title and text).
pub fn content_sha256(doc: &Document) -> String {
    let mut h = Sha256::new();
    h.update(doc.title.as_bytes());
    h.update([0]);
    h.update(doc.text.as_bytes());
    format!("{:x}", h.finalize())
}

/// What BM25 and the embedder see of a chunk: the document's title first, unless the
/// chunk already starts with it.
pub fn indexed_text(title: &str, chunk: &str) -> String {
    if title.is_empty() || chunk.trim_start().starts_with(title) {
        chunk.to_string()
    } else {
        format!("{title}\n{chunk}")
    }
}

/// One committed generation, loaded.
pub struct RagIndex {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub docs: Vec<DocEntry>,
    pub chunks: Vec<ChunkEntry>,
    /// Row of each chunk -> its document's position in `docs`.
    pub chunk_doc: Vec<usize>,
    pub vectors: FlatVectors,
    pub bm25: Bm25,
}

fn gen_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation}"))
}

fn corrupt(dir: &Path, message: String) -> RagError {
    RagError::Index {
        dir: dir.to_path_buf(),
        message,
    }
}

/// The manifest of the index at `dir`, or None when there is no index there yet.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let p = dir.join(MANIFEST);
    let raw = match std::fs::read_to_string(&p) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&p)(e)),
    };
    let m: Manifest = serde_json::from_str(&raw)
        .map_err(|e| corrupt(dir, format!("{MANIFEST} is corrupt ({e})")))?;
    if m.format != FORMAT {
        return Err(corrupt(
            dir,
            format!(
                "index format {} (this kiln reads format {FORMAT})",
                m.format
            ),
        ));
    }
    Ok(Some(m))
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut out = vec![];
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        out.push(serde_json::from_str(&line).map_err(|e| RagError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("corrupt index file ({e})"),
        })?);
    }
    Ok(out)
}

impl RagIndex {
    /// Opens the committed generation; every file is checked against the manifest.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?.ok_or_else(|| {
            corrupt(
                dir,
                format!("no {MANIFEST}: not an index (build one with `kiln rag index`)"),
            )
        })?;
        let g = gen_dir(dir, manifest.generation);
        let docs: Vec<DocEntry> = read_lines(&g.join("docs.jsonl"))?;
        let chunks: Vec<ChunkEntry> = read_lines(&g.join("chunks.jsonl"))?;
        if docs.len() != manifest.documents || chunks.len() != manifest.chunks {
            return Err(corrupt(
                dir,
                format!(
                    "generation {} holds {} documents and {} chunks; the manifest says {} and {}",
                    manifest.generation,
                    docs.len(),
                    chunks.len(),
                    manifest.documents,
                    manifest.chunks
                ),
            ));
        }
        let mut chunk_doc = vec![usize::MAX; chunks.len()];
        for (d, doc) in docs.iter().enumerate() {
            let rows = chunk_doc
                .get_mut(doc.first..doc.first + doc.count)
                .ok_or_else(|| {
                    corrupt(
                        dir,
                        format!("document '{}' points past the chunk table", doc.id),
                    )
                })?;
            rows.fill(d);
        }
        if chunk_doc.contains(&usize::MAX) {
            return Err(corrupt(dir, "a chunk belongs to no document".into()));
        }
        let vectors =
            FlatVectors::read(&g.join("vectors.f32"), manifest.embedder.dim, chunks.len())?;
        let bm25 = Bm25::open(&g.join("bm25"))
            .map_err(|e| corrupt(dir, format!("BM25 index unreadable ({e})")))?;
        if bm25.len() != chunks.len() as u64 {
            return Err(corrupt(
                dir,
                format!(
                    "BM25 holds {} chunks, the table {}",
                    bm25.len(),
                    chunks.len()
                ),
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            docs,
            chunks,
            chunk_doc,
            vectors,
            bm25,
        })
    }

    /// The directory of the open generation.
    pub fn generation_dir(&self) -> PathBuf {
        gen_dir(&self.dir, self.manifest.generation)
    }

    /// The document a chunk row belongs to.
    pub fn doc_of(&self, row: usize) -> &DocEntry {
        &self.docs[self.chunk_doc[row]]
    }

    /// Whether a chunk's document carries every `key=value` filter.
    pub fn matches(&self, row: usize, filters: &[String]) -> bool {
        let doc = self.doc_of(row);
        filters.iter().all(|f| {
            f.split_once('=')
                .is_some_and(|(k, v)| doc.meta.get(k).is_some_and(|x| x == v))
        })
    }
}

/// A document with its chunks and their vectors: the unit a commit writes.
#[derive(Debug, Clone)]
pub struct IndexedDoc {
    pub entry: DocEntry,
    pub chunks: Vec<ChunkEntry>,
    pub vectors: Vec<Vec<f32>>,
}

/// Writes `docs` (sorted by id) as the next generation and makes it current.
pub fn commit(
    dir: &Path,
    previous: Option<&Manifest>,
    embedder: &EmbedderId,
    chunker: Chunker,
    docs: &BTreeMap<String, IndexedDoc>,
) -> Result<Manifest> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let generation = previous.map_or(1, |m| m.generation + 1);
    let g = gen_dir(dir, generation);
    if g.exists() {
        // Left by a crash before its manifest was written: never current, safe to drop.
        std::fs::remove_dir_all(&g).map_err(io_err(&g))?;
    }
    std::fs::create_dir_all(g.join("bm25")).map_err(io_err(&g))?;

    let mut doc_lines =
        std::io::BufWriter::new(std::fs::File::create(g.join("docs.jsonl")).map_err(io_err(&g))?);
    let mut chunk_lines =
        std::io::BufWriter::new(std::fs::File::create(g.join("chunks.jsonl")).map_err(io_err(&g))?);
    let mut vectors = FlatVectors::new(embedder.dim);
    let mut bm25_docs: Vec<(String, Vec<String>)> = vec![];
    let mut row = 0;
    for d in docs.values() {
        let mut entry = d.entry.clone();
        entry.first = row;
        entry.count = d.chunks.len();
        serde_json::to_writer(&mut doc_lines, &entry)?;
        doc_lines.write_all(b"\n").map_err(io_err(&g))?;
        let meta: Vec<String> = entry.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (c, v) in d.chunks.iter().zip(&d.vectors) {
            serde_json::to_writer(&mut chunk_lines, c)?;
            chunk_lines.write_all(b"\n").map_err(io_err(&g))?;
            vectors.push(v)?;
            bm25_docs.push((indexed_text(&entry.title, &c.text), meta.clone()));
            row += 1;
        }
    }
    for (w, name) in [(doc_lines, "docs.jsonl"), (chunk_lines, "chunks.jsonl")] {
        let p = g.join(name);
        let f = w.into_inner().map_err(|e| io_err(&p)(e.into_error()))?;
        f.sync_all().map_err(io_err(&p))?;
    }
    vectors.write(&g.join("vectors.f32"))?;
    Bm25::build(
        &g.join("bm25"),
        bm25_docs
            .iter()
            .enumerate()
            .map(|(i, (text, meta))| Bm25Doc {
                row: i as u64,
                text,
                meta: meta.clone(),
            }),
    )?;
    kiln_model::atomic::sync_dir(&g)?;

    let manifest = Manifest {
        format: FORMAT,
        generation,
        embedder: embedder.clone(),
        chunker,
        documents: docs.len(),
        chunks: row,
    };
    // The commit: the new generation becomes the index once the manifest names it.
    let text = serde_json::to_string_pretty(&manifest)?;
    kiln_model::atomic::write_bytes_atomic(&dir.join(MANIFEST), text.as_bytes())?;
    // Older generations are no longer reachable.
    for e in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("gen-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if n != generation {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(manifest)
}

/// The committed documents with their chunks and vectors, keyed by id (the starting point
/// of an update).
pub fn indexed_docs(index: &RagIndex) -> BTreeMap<String, IndexedDoc> {
    index
        .docs
        .iter()
        .map(|d| {
            let rows = d.first..d.first + d.count;
            (
                d.id.clone(),
                IndexedDoc {
                    entry: d.clone(),
                    chunks: index.chunks[rows.clone()].to_vec(),
                    vectors: rows.map(|r| index.vectors.row(r).to_vec()).collect(),
                },
            )
        })
        .collect()
}

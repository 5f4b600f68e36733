//! Documents into an index directory: new and changed documents (by id and content hash)
//! are chunked and embedded, unchanged ones keep their vectors, and the result is committed
//! every `commit_every` documents, so a long run that is killed keeps what it committed.
//! An index refuses an embedder or a chunker other than the one it was built with.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::chunk::{chunk_document, Chunker};
use crate::document::Document;
use crate::embed::Embedder;
use crate::error::{RagError, Result};
use crate::index::{
    commit, content_sha256, indexed_docs, indexed_text, read_manifest, ChunkEntry, DocEntry,
    EmbedderId, IndexedDoc, Manifest, RagIndex,
};

#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The chunker of a new index (an existing one keeps its own; another is refused).
    pub chunker: Option<Chunker>,
    /// Texts per embedder batch.
    pub batch_size: usize,
    /// Documents embedded between commits.
    pub commit_every: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            chunker: None,
            batch_size: 32,
            commit_every: 1000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub chunks_embedded: usize,
    /// Input documents left out (a second document with an id already seen).
    pub skipped: Vec<(PathBuf, String)>,
    /// The generation now current (None: there is still no index).
    pub generation: Option<u64>,
    pub documents: usize,
    pub chunks: usize,
}

pub fn embedder_id(e: &Embedder) -> EmbedderId {
    EmbedderId {
        name: e.name.clone(),
        sha256: e.sha256.clone(),
        dim: e.dim(),
        path: Some(e.dir.clone()),
    }
}

/// The committed state (empty for a new index) after checking it suits `embedder`.
fn open_for_update(
    dir: &Path,
    embedder: &EmbedderId,
    chunker: Option<Chunker>,
) -> Result<(Option<Manifest>, Chunker, BTreeMap<String, IndexedDoc>)> {
    let Some(m) = read_manifest(dir)? else {
        return Ok((None, chunker.unwrap_or_default(), BTreeMap::new()));
    };
    check_embedder(dir, &m, embedder)?;
    if let Some(c) = chunker.filter(|c| *c != m.chunker) {
        return Err(RagError::Index {
            dir: dir.to_path_buf(),
            message: format!(
                "built with chunker {:?}, asked for {c:?}; index into a new directory to change it",
                m.chunker
            ),
        });
    }
    let index = RagIndex::open(dir)?;
    Ok((Some(m.clone()), m.chunker, indexed_docs(&index)))
}

/// Refuses an index built with another embedder, naming both.
pub fn check_embedder(dir: &Path, m: &Manifest, embedder: &EmbedderId) -> Result<()> {
    if m.embedder.sha256 != embedder.sha256 || m.embedder.dim != embedder.dim {
        return Err(RagError::Index {
            dir: dir.to_path_buf(),
            message: format!(
                "built with embedder {} (sha256 {}, {} dims); this is {} (sha256 {}, {} dims). \
                 Use the index's embedder, or index into a new directory",
                m.embedder.name,
                short(&m.embedder.sha256),
                m.embedder.dim,
                embedder.name,
                short(&embedder.sha256),
                embedder.dim
            ),
        });
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Adds or updates `docs` (by id) in the index at `dir`, creating it if needed.
pub fn index_documents(
    dir: &Path,
    embedder: &Embedder,
    docs: Vec<Document>,
    opts: &IndexOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<IndexReport> {
    let id = embedder_id(embedder);
    let (mut manifest, chunker, mut current) = open_for_update(dir, &id, opts.chunker)?;
    let mut report = IndexReport {
        generation: manifest.as_ref().map(|m| m.generation),
        ..Default::default()
    };
    let mut seen = HashSet::new();
    let mut pending = vec![];
    for d in docs {
        if !seen.insert(d.id.clone()) {
            report
                .skipped
                .push((d.source.clone(), format!("id '{}' appears again", d.id)));
            continue;
        }
        let sha = content_sha256(&d);
        match current.get(&d.id) {
            Some(old) if old.entry.sha256 == sha && old.entry.meta == d.meta => {
                report.unchanged += 1
            }
            Some(_) => {
                report.updated += 1;
                pending.push((d, sha));
            }
            None => {
                report.added += 1;
                pending.push((d, sha));
            }
        }
    }
    let total = pending.len();
    let mut done = 0;
    for group in pending.chunks(opts.commit_every.max(1)) {
        for (d, sha) in group {
            let chunks = chunk_document(d, chunker, embedder);
            let texts: Vec<String> = chunks
                .iter()
                .map(|c| indexed_text(&d.title, &c.text))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs, opts.batch_size)?;
            report.chunks_embedded += chunks.len();
            current.insert(
                d.id.clone(),
                IndexedDoc {
                    entry: DocEntry {
                        id: d.id.clone(),
                        title: d.title.clone(),
                        source: d.source.clone(),
                        offset: d.offset,
                        meta: d.meta.clone(),
                        sha256: sha.clone(),
                        first: 0,
                        count: chunks.len(),
                    },
                    chunks: chunks
                        .into_iter()
                        .map(|c| ChunkEntry {
                            chunk_id: c.chunk_id,
                            doc_id: c.doc_id,
                            start: c.start,
                            end: c.end,
                            text: c.text,
                        })
                        .collect(),
                    vectors,
                },
            );
            done += 1;
            progress(done, total);
        }
        manifest = Some(commit(dir, manifest.as_ref(), &id, chunker, &current)?);
    }
    let m = match manifest {
        Some(m) => m,
        // Nothing to add to a new index: still leave a valid, empty one.
        None => commit(dir, None, &id, chunker, &current)?,
    };
    report.generation = Some(m.generation);
    report.documents = m.documents;
    report.chunks = m.chunks;
    Ok(report)
}

/// Removes documents by id (BM25, vectors and chunk table together); ids not in the index
/// are returned.
pub fn delete_documents(
    dir: &Path,
    embedder: &Embedder,
    ids: &[String],
) -> Result<(IndexReport, Vec<String>)> {
    let id = embedder_id(embedder);
    let (manifest, chunker, mut current) = open_for_update(dir, &id, None)?;
    let Some(manifest) = manifest else {
        return Err(RagError::Index {
            dir: dir.to_path_buf(),
            message: "no index here to delete from".into(),
        });
    };
    let mut missing = vec![];
    let mut deleted = 0;
    for i in ids {
        if current.remove(i).is_some() {
            deleted += 1;
        } else {
            missing.push(i.clone());
        }
    }
    let m = if deleted > 0 {
        commit(dir, Some(&manifest), &id, chunker, &current)?
    } else {
        manifest
    };
    Ok((
        IndexReport {
            deleted,
            generation: Some(m.generation),
            documents: m.documents,
            chunks: m.chunks,
            ..Default::default()
        },
        missing,
    ))
}

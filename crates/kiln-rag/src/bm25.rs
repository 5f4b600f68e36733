//! BM25 over chunks through tantivy: each chunk's text (English stemming analyzer) with its
//! row in the generation's chunk table, and its metadata as exact `key=value` terms for
//! filters. Queries are the analyzed words joined by OR, so any text is a valid query (no
//! query syntax to trip over).

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::{Index, IndexReader, TantivyDocument, Term};

use crate::error::{RagError, Result};

pub struct Bm25 {
    index: Index,
    reader: IndexReader,
    text: Field,
    row: Field,
    meta: Field,
}

fn schema() -> (Schema, Field, Field, Field) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("en_stem")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = b.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    let row = b.add_u64_field("row", STORED);
    let meta = b.add_text_field("meta", STRING);
    (b.build(), text, row, meta)
}

/// One chunk to index: its row, its text (title included by the caller) and its
/// `key=value` metadata terms.
pub struct Bm25Doc<'a> {
    pub row: u64,
    pub text: &'a str,
    pub meta: Vec<String>,
}

impl Bm25 {
    /// Builds a fresh index in `dir` (which must be empty) and commits it.
    pub fn build<'a>(dir: &Path, docs: impl Iterator<Item = Bm25Doc<'a>>) -> Result<Self> {
        let (schema, text, row, meta) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        let mut w: tantivy::IndexWriter = index.writer_with_num_threads(1, 64_000_000)?;
        for d in docs {
            let mut doc = TantivyDocument::default();
            doc.add_text(text, d.text);
            doc.add_u64(row, d.row);
            for m in &d.meta {
                doc.add_text(meta, m);
            }
            w.add_document(doc)?;
        }
        w.commit()?;
        w.wait_merging_threads()?;
        Self::open(dir)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let index = Index::open_in_dir(dir)?;
        let s = index.schema();
        let field = |name: &str| {
            s.get_field(name).map_err(|_| RagError::Index {
                dir: dir.to_path_buf(),
                message: format!("BM25 index has no '{name}' field"),
            })
        };
        let (text, row, meta) = (field("text")?, field("row")?, field("meta")?);
        let reader = index.reader()?;
        Ok(Self {
            index,
            reader,
            text,
            row,
            meta,
        })
    }

    /// (row, BM25 score) of the `k` best chunks for `query`, restricted to chunks carrying
    /// every one of `filters` (`key=value`).
    pub fn search(&self, query: &str, k: usize, filters: &[String]) -> Result<Vec<(usize, f32)>> {
        let mut analyzer = self.index.tokenizer_for_field(self.text)?;
        let mut stream = analyzer.token_stream(query);
        let mut words: Vec<Box<dyn Query>> = vec![];
        let mut seen = std::collections::HashSet::new();
        while let Some(t) = stream.next() {
            if seen.insert(t.text.clone()) {
                let term = Term::from_field_text(self.text, &t.text);
                words.push(Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)));
            }
        }
        if words.is_empty() || k == 0 {
            return Ok(vec![]);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(BooleanQuery::new(
                words.into_iter().map(|q| (Occur::Should, q)).collect(),
            )),
        )];
        for f in filters {
            let term = Term::from_field_text(self.meta, f);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let row = doc
                .get_first(self.row)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| RagError::Other("a BM25 document without its row".into()))?;
            out.push((row as usize, score));
        }
        Ok(out)
    }

    /// Chunks indexed.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemmed_or_queries_rank_by_bm25_and_filters_restrict() {
        let dir = tempfile::tempdir().unwrap();
        let texts = [
            ("The compiler compiles programs.", "src=a"),
            ("A cat sat on the mat.", "src=b"),
            (
                "Compilers and interpreters run programs; compiling is translation.",
                "src=b",
            ),
        ];
        let bm = Bm25::build(
            dir.path(),
            texts.iter().enumerate().map(|(i, (t, m))| Bm25Doc {
                row: i as u64,
                text: t,
                meta: vec![m.to_string()],
            }),
        )
        .unwrap();
        assert_eq!(bm.len(), 3);
        let hits = bm.search("compiling (programs)!", 10, &[]).unwrap();
        let rows: Vec<usize> = hits.iter().map(|h| h.0).collect();
        assert_eq!(rows.len(), 2);
        assert!(rows.contains(&0) && rows.contains(&2));
        assert!(hits[0].1 >= hits[1].1);
        let only_b = bm
            .search("compiling programs", 10, &["src=b".into()])
            .unwrap();
        assert_eq!(only_b.iter().map(|h| h.0).collect::<Vec<_>>(), [2]);
        assert!(bm.search("   ", 10, &[]).unwrap().is_empty());
    }
}

//! kiln's retrieval engine: documents in, chunks indexed for BM25 (tantivy) and for dense
//! search (a BERT sentence embedder, exact search in kiln's own vector store), hybrid
//! fusion, reranking, query rewriting, cited answers and IR metrics.

pub mod bm25;
pub mod chunk;
pub mod document;
pub mod embed;
pub mod error;
pub mod golden;
pub mod index;
pub mod indexer;
pub mod ir_metrics;
pub mod loaders;
pub mod rag_eval;
pub mod retrieve;
pub mod vectors;

pub use chunk::{Chunk, Chunker};
pub use document::Document;
pub use embed::{cosine, Embedder};
pub use error::{RagError, Result};
pub use index::RagIndex;
pub use indexer::{delete_documents, index_documents, IndexOptions, IndexReport};
pub use retrieve::{Hit, Mode, Retriever};

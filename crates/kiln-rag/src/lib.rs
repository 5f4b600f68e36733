//! kiln's retrieval engine: documents in, chunks indexed for BM25 (tantivy) and for dense
//! search (a BERT sentence embedder, exact search in kiln's own vector store), hybrid
//! fusion, reranking, query rewriting, cited answers and IR metrics.

pub mod answer_eval;
pub mod ask;
pub mod bm25;
pub mod chunk;
pub mod document;
pub mod embed;
pub mod error;
pub mod golden;
pub mod hnsw;
pub mod index;
pub mod indexer;
pub mod ir_metrics;
pub mod loaders;
pub mod pipeline;
pub mod rag_eval;
pub mod rerank;
pub mod retrieve;
pub mod rewrite;
pub mod vectors;
pub mod verify;

pub use chunk::{Chunk, Chunker};
pub use document::Document;
pub use embed::{cosine, Embedder};
pub use error::{RagError, Result};
pub use index::RagIndex;
pub use indexer::{delete_documents, index_documents, IndexOptions, IndexReport};
pub use pipeline::{Pipeline, PipelineSpec};
pub use rerank::{LlmReranker, RerankKind, Reranker};
pub use retrieve::{Hit, Mode, Retriever};
pub use verify::Verifier;

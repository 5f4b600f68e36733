//! Sentence embeddings served at `/v1/embeddings`. The server sees an embedding model only
//! through this trait (the binary plugs in kiln-rag's BERT embedder), so serving keeps no
//! retrieval code.

pub trait EmbeddingModel: Send + Sync {
    /// The name requests address it by (`model`).
    fn name(&self) -> &str;
    /// Width of its vectors.
    fn dim(&self) -> usize;
    /// Tokens it reads of one input; longer inputs are cut.
    fn max_input_tokens(&self) -> usize;
    /// Tokens it reads of `text` (usage counts these).
    fn count_tokens(&self, text: &str) -> Result<usize, String>;
    /// Unit vectors of `texts`, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

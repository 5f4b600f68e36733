//! Route handlers: validate, submit, respond (JSON or SSE).

pub mod chat;
mod chat_stream;
pub mod completions;
mod completions_stream;
pub mod embeddings;
pub mod health;
mod legacy_logprobs;
pub mod metrics;
pub mod models;
pub mod tokenize;

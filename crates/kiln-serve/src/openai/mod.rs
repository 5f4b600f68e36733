//! OpenAI's wire format: request and response bodies, errors, and parameter checks.

pub mod chat;
pub mod common;
pub mod completions;
pub mod embeddings;
pub mod error;
pub mod json;
pub mod params;

//! kiln's client contract for "a language model": [`LanguageModel`] with `generate`
//! (sampling parameters, stops, n), `chat` (messages through the model's own chat prompt),
//! `loglik` (continuations scored after their contexts, batched) and room for `embed`.
//! Two implementations: [`EngineLm`], kiln's engine in this process, and [`EndpointLm`],
//! any OpenAI-compatible URL (API key, timeouts, retries with backoff, errors that name
//! the URL and the status). Evaluation, retrieval (reranking, query rewriting, answers),
//! the LLM judge and the serving load generator all talk to models through this crate, so
//! every one of them works against a local model and a remote one alike.

pub mod endpoint;
pub mod error;
pub mod in_process;
pub mod judge;
pub mod model;
pub mod request;
pub mod split;

pub use endpoint::{EndpointLm, EndpointOptions};
pub use error::{LmError, Result};
pub use in_process::EngineLm;
pub use model::{user, LanguageModel, TextCompletion};
pub use request::{Completion, FinishReason, GenParams, LoglikRequest, LoglikScore};
pub use split::{split_request, TokenizedRequest};

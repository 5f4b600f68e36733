//! kiln's HTTP layer: an OpenAI-compatible API over [`kiln_engine`] handles (a thin adapter:
//! validate, submit, stream), and `loadgen`, a load generator for any OpenAI-compatible
//! server.
//!
//! ```no_run
//! # async fn demo(engine: kiln_engine::EngineHandle) -> Result<(), kiln_serve::ServeError> {
//! let state = kiln_serve::AppState::new(vec![engine], kiln_serve::ServeOptions::default())?;
//! let listener = kiln_serve::server::bind("127.0.0.1", 8080).await?;
//! kiln_serve::server::serve(listener, state, kiln_serve::server::shutdown_signal()).await
//! # }
//! ```

pub mod app;
pub mod auth;
pub mod embeddings;
pub mod error;
pub mod generation;
pub mod histogram;
pub mod loadgen;
pub mod metrics;
pub mod model_spec;
pub mod openai;
pub mod options;
pub mod rate_limit;
pub mod registry;
pub mod request_log;
pub mod routes;
pub mod server;
pub mod sse;
pub mod state;

pub use app::app;
pub use embeddings::EmbeddingModel;
pub use error::ServeError;
pub use model_spec::ModelSpec;
pub use options::{RateLimits, ServeOptions};
pub use state::AppState;

//! kiln's HTTP layer: an OpenAI-compatible API over [`kiln_engine`] handles (a thin adapter:
//! validate, submit, stream), and `loadgen`, a load generator for any OpenAI-compatible
//! server.

pub mod loadgen;

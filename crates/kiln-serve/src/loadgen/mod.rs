//! A load generator for OpenAI-compatible servers (`kiln bench serve`).

pub mod bench;
pub mod chat;
pub mod demo;
pub mod generate;
pub mod info;
pub mod perplexity;
pub mod pull;
pub mod tokenize;

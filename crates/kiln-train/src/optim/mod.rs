//! The optimizer pieces every training loop shares: AdamW (PyTorch's form, per-parameter
//! decay, saveable state), nanoGPT's warmup-cosine learning rate, and global-norm clipping.

pub mod adamw;
pub mod clip;
pub mod schedule;

pub mod attention;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod rope;

pub use attention::{causal_mask, scaled_dot_product_attention, Attention};
pub use linear::{Embedding, Linear, Weight};
pub use mlp::SwiGluMlp;
pub use norm::RmsNorm;
pub use rope::RotaryEmbedding;

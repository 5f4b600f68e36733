pub mod attention;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod rope;

pub use attention::{causal_mask, scaled_dot_product_attention, Attention};
pub use linear::{Embedding, Linear, Weight};
pub use mlp::{GeluMlp, Mlp, SwiGluMlp};
pub use norm::{LayerNorm, Norm, RmsNorm};
pub use rope::RotaryEmbedding;

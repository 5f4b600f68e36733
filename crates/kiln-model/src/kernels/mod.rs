//! kiln's own CPU kernels where candle's are slower: quantized matrix multiplication for
//! the GGUF block formats small models ship in (Q4_0, Q4_1, Q8_0) and attention over an f16
//! KV cache, with AVX2 and a portable fallback, threaded on candle's low-latency worker pool;
//! and the fused training kernels of [`train`].

pub mod attention;
pub mod blocks;
pub mod dot;
pub mod dot8;
pub mod ggml_math;
pub mod qmatmul;
pub mod train;

pub use qmatmul::QuantMatrix;

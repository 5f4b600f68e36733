//! kiln's own CPU kernels where candle's are slower: quantized matrix multiplication for
//! the GGUF block formats small models ship in (Q4_0, Q4_1, Q8_0), with AVX2 and a
//! portable fallback, threaded on candle's low-latency worker pool.

pub mod blocks;
pub mod dot;
pub mod qmatmul;

pub use qmatmul::QuantMatrix;

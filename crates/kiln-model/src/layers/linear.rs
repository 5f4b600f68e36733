//! Linear layers and embeddings whose weights are either dense tensors (trainable, from
//! safetensors) or GGUF quantized blocks kept quantized and multiplied as such.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, D};

use crate::error::Result;

/// A weight matrix of shape (out_features, in_features).
#[derive(Debug, Clone)]
pub enum Weight {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
}

impl Weight {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Weight::Dense(t) => t.dims().to_vec(),
            Weight::Quantized(q) => q.shape().dims().to_vec(),
        }
    }

    /// The storage type, e.g. `F32`, `Q4_1`.
    pub fn type_name(&self) -> String {
        match self {
            Weight::Dense(t) => format!("{:?}", t.dtype()).to_uppercase(),
            Weight::Quantized(q) => format!("{:?}", q.dtype()).to_uppercase(),
        }
    }

    pub fn quant_type(&self) -> Option<GgmlDType> {
        match self {
            Weight::Dense(_) => None,
            Weight::Quantized(q) => Some(q.dtype()),
        }
    }

    pub fn elem_count(&self) -> usize {
        self.dims().iter().product()
    }

    pub fn dequantize(&self) -> Result<Tensor> {
        Ok(match self {
            Weight::Dense(t) => t.clone(),
            Weight::Quantized(q) => q.dequantize(&q.device())?,
        })
    }
}

/// y = x Wᵀ + b.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    matmul: Option<QMatMul>,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        let matmul = match &weight {
            Weight::Quantized(q) => Some(QMatMul::from_arc(q.clone())?),
            Weight::Dense(_) => None,
        };
        Ok(Self {
            weight,
            matmul,
            bias,
        })
    }

    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x` is (..., in_features); the result is (..., out_features).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match (&self.weight, &self.matmul) {
            (_, Some(mm)) => mm.forward(x)?,
            (Weight::Dense(w), None) => {
                let w = if w.dtype() == x.dtype() {
                    w.clone()
                } else {
                    w.to_dtype(x.dtype())?
                };
                x.broadcast_matmul(&w.t()?)?
            }
            (Weight::Quantized(_), None) => unreachable!("quantized weights always get a QMatMul"),
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Token embedding table of shape (vocab, hidden); rows of a quantized table are
/// dequantized on lookup.
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Weight,
}

impl Embedding {
    pub fn new(weight: Weight) -> Self {
        Self { weight }
    }

    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    /// `ids` (b, t) of u32 → (b, t, hidden) f32.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match &self.weight {
            Weight::Dense(w) => {
                let (b, t) = ids.dims2()?;
                let rows = w.index_select(&ids.flatten_all()?, 0)?;
                rows.reshape((b, t, w.dim(D::Minus1)?))?
            }
            Weight::Quantized(q) => q.embedding(ids)?.to_dtype(DType::F32)?,
        })
    }
}

//! Linear layers and embeddings whose weights are either dense tensors (trainable, from
//! safetensors) or GGUF quantized blocks kept quantized and multiplied as such.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, D};

use crate::error::Result;
use crate::kernels::blocks::QuantKind;
use crate::kernels::qmatmul::QuantMatmulOp;
use crate::kernels::QuantMatrix;
use crate::lora::LoraDelta;

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

/// How a quantized weight is multiplied: kiln's kernels for the formats they cover,
/// candle's for the rest (k-quants, Q5).
#[derive(Debug, Clone)]
enum QuantMatmul {
    Kiln(Arc<QuantMatrix>),
    Candle(QMatMul),
}

impl QuantMatmul {
    fn new(q: &Arc<QTensor>) -> Result<Self> {
        let kind = match q.dtype() {
            GgmlDType::Q4_0 => Some(QuantKind::Q4_0),
            GgmlDType::Q4_1 => Some(QuantKind::Q4_1),
            GgmlDType::Q8_0 => Some(QuantKind::Q8_0),
            _ => None,
        };
        if let (Some(kind), true, Ok((n, k))) = (kind, q.device().is_cpu(), q.shape().dims2()) {
            if let Some(m) = QuantMatrix::new(kind, n, k, q.data()?.into_owned()) {
                return Ok(Self::Kiln(Arc::new(m)));
            }
        }
        Ok(Self::Candle(QMatMul::from_arc(q.clone())?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            // A frozen base under trainable adapters (QLoRA): gradients flow to x only.
            Self::Kiln(m) if x.track_op() => crate::kernels::train::frozen_quant_linear(x, m)?,
            Self::Kiln(m) => x.contiguous()?.apply_op1_no_bwd(&QuantMatmulOp(m))?,
            Self::Candle(_) if x.track_op() => {
                return Err(crate::error::ModelError::Op {
                    op: "linear",
                    msg: "training through this quantization type is not supported \
                          (kiln's kernels cover Q4_0, Q4_1 and Q8_0)"
                        .into(),
                })
            }
            Self::Candle(m) => m.forward(x)?,
        })
    }
}

/// y = x Wᵀ + b, plus a LoRA adapter's low-rank update when one is attached.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    matmul: Option<QuantMatmul>,
    bias: Option<Tensor>,
    lora: Option<Arc<LoraDelta>>,
}

impl Linear {
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        let matmul = match &weight {
            Weight::Quantized(q) => Some(QuantMatmul::new(q)?),
            Weight::Dense(_) => None,
        };
        Ok(Self {
            weight,
            matmul,
            bias,
            lora: None,
        })
    }

    /// The same layer with an adapter's update added to its output.
    pub fn with_lora(mut self, delta: Arc<LoraDelta>) -> Self {
        self.lora = Some(delta);
        self
    }

    pub fn lora(&self) -> Option<&Arc<LoraDelta>> {
        self.lora.as_ref()
    }

    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    /// The weight, when it is dense and the layer has no bias or adapter (the fused
    /// training ops' case).
    pub fn dense_unbiased(&self) -> Option<&Tensor> {
        match (&self.weight, &self.bias, &self.lora) {
            (Weight::Dense(w), None, None) => Some(w),
            _ => None,
        }
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
                if x.track_op() || w.track_op() {
                    crate::kernels::train::linear(x, &w)?
                } else {
                    x.broadcast_matmul(&w.t()?)?
                }
            }
            (Weight::Quantized(_), None) => unreachable!("quantized weights always get a QMatMul"),
        };
        self.finish(x, y)
    }

    /// Adds the bias and the adapter's update to the base product `y` of input `x`.
    fn finish(&self, x: &Tensor, y: Tensor) -> Result<Tensor> {
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        Ok(match &self.lora {
            Some(delta) => (y + delta.forward(x)?)?,
            None => y,
        })
    }
}

/// `x · Wᵢᵀ + bᵢ` for several layers reading the same input (q/k/v, gate/up). When all of
/// them run on kiln's quantized kernels the input is quantized once and every row goes
/// out in one parallel dispatch; otherwise each layer runs on its own.
pub fn forward_many(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
    let kiln: Option<Vec<&QuantMatrix>> = layers
        .iter()
        .map(|l| match &l.matmul {
            Some(QuantMatmul::Kiln(m)) => Some(m.as_ref()),
            _ => None,
        })
        .collect();
    let fused = layers.len() > 1 && x.dtype() == DType::F32 && !x.track_op();
    let Some(mats) = kiln.filter(|_| fused) else {
        return layers.iter().map(|l| l.forward(x)).collect();
    };
    let mut dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(0);
    let host = x.flatten_all()?.to_vec1::<f32>()?;
    let ys = QuantMatrix::matmul_many(&mats, &host, host.len() / k.max(1));
    layers
        .iter()
        .zip(ys)
        .map(|(l, y)| {
            if let Some(last) = dims.last_mut() {
                *last = l.out_features();
            }
            l.finish(x, Tensor::from_vec(y, dims.as_slice(), x.device())?)
        })
        .collect()
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

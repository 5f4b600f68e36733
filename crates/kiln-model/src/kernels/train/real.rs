//! The element types the training kernels run in: f32 for training, f64 for the
//! finite-difference gradient checks, which go through the same kernel code.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Tensor};

pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + candle_core::WithDType
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn of(x: f64) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn erf(self) -> Self;
    fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    /// ggml's polynomial `expf`: within two ulp of libm and, unlike libm's call, inlined
    /// into loops the compiler vectorises.
    #[inline(always)]
    fn exp(self) -> Self {
        crate::kernels::ggml_math::expf_ggml(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        erf_f32(self)
    }
    fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [Self]> {
        match s {
            CpuStorage::F32(v) => contiguous(v, l, op),
            other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [Self]> {
        match s {
            CpuStorage::F64(v) => contiguous(v, l, op),
            other => candle_core::bail!("{op}: expected f64, got {:?}", other.dtype()),
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// erf(x) in f32 as a rational function x·P(x²)/Q(x²) on [-4, 4] (erf is ±1 in f32
/// beyond): branch-free, so GELU loops vectorise; within 4e-7 of the exact value.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x2
        .mul_add(-2.726_142_3e-10, 2.770_681_4e-8)
        .mul_add(x2, -2.101_024e-6)
        .mul_add(x2, -5.692_506_4e-5)
        .mul_add(x2, -7.349_906_3e-4)
        .mul_add(x2, -2.954_600_1e-3)
        .mul_add(x2, -1.609_603_3e-2);
    let q = x2
        .mul_add(-1.456_607_2e-5, -2.133_740_6e-4)
        .mul_add(x2, -1.682_827e-3)
        .mul_add(x2, -7.373_329_2e-3)
        .mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// A contiguous CPU tensor's elements, borrowed in place (read-locked while held).
pub struct Borrowed<'a> {
    storage: candle_core::StorageRef<'a>,
    layout: &'a Layout,
}

impl Borrowed<'_> {
    pub fn slice<T: Real>(&self) -> candle_core::Result<&[T]> {
        match &*self.storage {
            candle_core::Storage::Cpu(c) => T::slice(c, self.layout, "kiln training kernel"),
            _ => candle_core::bail!("kiln's training kernels run on the CPU"),
        }
    }
}

/// Borrows `t`, which must be contiguous (pass `t.contiguous()?`, free when it already is).
pub fn borrow(t: &Tensor) -> Borrowed<'_> {
    let (storage, layout) = t.storage_and_layout();
    Borrowed { storage, layout }
}

/// A pointer tasks write disjoint parts of an output through.
#[derive(Clone, Copy)]
pub struct SharedOut<T>(pub *mut T);
// SAFETY: every user writes ranges no other task touches, and joins before reading.
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    pub fn ptr(&self) -> *mut T {
        self.0
    }

    /// # Safety
    /// `at..at + len` is inside the allocation and written by this task only.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, at: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(at), len)
    }

    /// [`SharedOut::slice`] over memory that may be uninitialised: zeroes it first (all-zero
    /// bytes are 0.0 for f32 and f64). Done inside each task, the zeroing is parallel and
    /// leaves the range in this core's cache for the writes that follow, where zeroing the
    /// whole output up front is a serial pass over memory.
    ///
    /// # Safety
    /// As for [`SharedOut::slice`]; `T` is a float type.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn zeroed(&self, at: usize, len: usize) -> &mut [T] {
        std::ptr::write_bytes(self.0.add(at), 0, len);
        std::slice::from_raw_parts_mut(self.0.add(at), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_f32_is_within_5e_7_of_libm() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 * 1e-4;
            let got = erf_f32(x as f32) as f64;
            worst = worst.max((got - libm::erf(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf_f32 - erf| = {worst:e}");
    }
}

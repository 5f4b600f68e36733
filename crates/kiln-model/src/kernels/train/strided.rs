//! Single-threaded products of strided matrix views, for kernels that already run one task
//! per core: a thin, checked wrapper over the `gemm` crate (the one candle's matmul uses).

use super::real::Real;

/// A `rows × cols` matrix inside a slice: element (r, c) at `at + r·rs + c·cs`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub at: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// Row-major with rows `ld` apart.
    pub fn rows(at: usize, rows: usize, cols: usize, ld: usize) -> Self {
        Self {
            at,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose, with no copy.
    pub fn t(self) -> Self {
        Self {
            at: self.at,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the furthest element, for bounds checks.
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return self.at;
        }
        self.at + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
    }
}

/// `dst = scale · a·b`, or `dst += scale · a·b` when `accumulate`.
///
/// # Safety
/// `dst` points to at least `d.end()` elements that no other thread touches during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul<T: Real>(
    dst: *mut T,
    d: View,
    accumulate: bool,
    a: &[T],
    av: View,
    b: &[T],
    bv: View,
    scale: T,
) {
    assert!(
        av.rows == d.rows && bv.cols == d.cols && av.cols == bv.rows,
        "matmul: {av:?} · {bv:?} into {d:?}"
    );
    assert!(
        av.end() <= a.len() && bv.end() <= b.len(),
        "matmul: view out of bounds"
    );
    gemm::gemm(
        d.rows,
        d.cols,
        av.cols,
        dst.add(d.at),
        d.cs as isize,
        d.rs as isize,
        accumulate,
        a.as_ptr().add(av.at),
        av.cs as isize,
        av.rs as isize,
        b.as_ptr().add(bv.at),
        bv.cs as isize,
        bv.rs as isize,
        T::ONE,
        scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

//! Strided matrix products on the `gemm` crate (the one burn's CPU backend uses), writing into
//! buffers this crate owns: no zero-filled output to copy into an aligned one (burn-flex's
//! `FlexTensor::empty` does both on every product), transposes as strides, optional
//! accumulation into the output.

/// Below this many multiply-adds a product runs on one thread (rayon's hand-off costs more).
const PARALLEL_MIN: usize = 192 * 192 * 192;

/// A strided matrix view: element `(i, j)` at `data[start + i · row + j · col]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    start: usize,
    rows: usize,
    cols: usize,
    row: usize,
    col: usize,
}

impl<'a> View<'a> {
    /// `rows × cols` elements of `data` from `start`, with row and column strides; panics when
    /// they do not all lie inside `data` (a bug in the caller, never input-dependent).
    pub fn new(
        data: &'a [f32],
        start: usize,
        rows: usize,
        cols: usize,
        row: usize,
        col: usize,
    ) -> Self {
        let last = start + rows.saturating_sub(1) * row + cols.saturating_sub(1) * col;
        assert!(
            rows == 0 || cols == 0 || last < data.len(),
            "matrix view out of bounds"
        );
        Self {
            data,
            start,
            rows,
            cols,
            row,
            col,
        }
    }

    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, rows, cols, cols, 1)
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Whether the columns, not the rows, are contiguous (a transposed row-major matrix).
    pub fn is_column_major(&self) -> bool {
        self.row == 1 && self.col != 1
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row: self.col,
            col: self.row,
            ..self
        }
    }
}

/// Where a product goes: a `rows × cols` block of `data` from `start` with row stride `row`.
pub struct Out<'a> {
    pub data: &'a mut [f32],
    pub start: usize,
    pub row: usize,
}

impl<'a> Out<'a> {
    pub fn rows(data: &'a mut [f32], cols: usize) -> Self {
        Self {
            data,
            start: 0,
            row: cols,
        }
    }
}

/// `out = lhs · rhs`, or `out += lhs · rhs` with `accumulate`.
pub fn matmul(out: Out, lhs: View, rhs: View, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                out.data[out.start + i * out.row..][..n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        out.start + (m - 1) * out.row + n <= out.data.len(),
        "output block out of bounds"
    );
    let parallelism = if m * n * k >= PARALLEL_MIN && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the output block and both operands lie inside their slices (asserted above and in
    // `View::new`), `out.data` is borrowed mutably so it overlaps neither operand, and the
    // strides are those the views were checked with.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.data.as_mut_ptr().add(out.start),
            1,
            out.row as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.start),
            lhs.col as isize,
            lhs.row as isize,
            rhs.data.as_ptr().add(rhs.start),
            rhs.col as isize,
            rhs.row as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `lhs · rhs` into a new row-major buffer.
pub fn product(lhs: View, rhs: View) -> Vec<f32> {
    let (m, n) = (lhs.rows, rhs.cols);
    let mut out = vec![0f32; m * n];
    matmul(Out::rows(&mut out, n), lhs, rhs, false);
    out
}

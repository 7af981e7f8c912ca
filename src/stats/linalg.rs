//! The dense linear algebra the statistics learners need, on `faer`, with the
//! conversions between `ndarray` and `faer` matrices.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};

// Sequential: the factorisation of a 4096 × 4096 matrix takes about a second on one
// core, and an embedding application decides how its threads are used. faer's `rayon`
// feature would be needed otherwise.
const PAR: Par = Par::Seq;

/// Copies an `ndarray` matrix into a new (column-major) `faer` matrix.
pub(super) fn to_faer(a: ArrayView2<'_, f64>) -> Mat<f64> {
    match a.as_slice() {
        // Row-major and contiguous: let faer transpose the storage, much faster than
        // reading a large matrix column by column.
        Some(slice) => MatRef::from_row_major_slice(slice, a.nrows(), a.ncols()).to_owned(),
        None => Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]]),
    }
}

/// Calls `f` with a `faer` view of `a`: of `a`'s own storage if it is row-major and
/// contiguous, of a copy otherwise.
pub(super) fn with_faer<R>(a: ArrayView2<'_, f64>, f: impl FnOnce(MatRef<'_, f64>) -> R) -> R {
    match a.as_slice() {
        Some(slice) => f(MatRef::from_row_major_slice(slice, a.nrows(), a.ncols())),
        None => f(to_faer(a).as_ref()),
    }
}

/// Copies a `faer` matrix into a new (row-major) `ndarray` matrix.
pub(super) fn to_ndarray(a: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), a.ncols()), |(i, j)| a[(i, j)])
}

/// Adds `alpha · aᵀ a` to the lower triangle (diagonal included) of `dst: (k, k)`, for
/// `a: (m, k)`; the strict upper triangle is left as it is.
///
/// Computing only one triangle of the symmetric product halves its `m · k²` cost, the
/// largest of an update of the statistics.
pub(super) fn add_lower_gram(dst: MatMut<'_, f64>, a: ArrayView2<'_, f64>, alpha: f64) {
    assert_eq!(
        (dst.nrows(), dst.ncols()),
        (a.ncols(), a.ncols()),
        "add_lower_gram: destination shape"
    );
    with_faer(a, |a| {
        triangular::matmul(
            dst,
            BlockStructure::TriangularLower,
            Accum::Add,
            a.transpose(),
            BlockStructure::Rectangular,
            a,
            BlockStructure::Rectangular,
            alpha,
            PAR,
        )
    });
}

/// A mutable `faer` view of the storage of `a`, made row-major first if it is not.
pub(super) fn faer_mut(a: &mut Array2<f64>) -> MatMut<'_, f64> {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
    let (m, n) = a.dim();
    let slice = a
        .as_slice_mut()
        .expect("a standard-layout array is contiguous");
    MatMut::from_row_major_slice_mut(slice, m, n)
}

/// Copies the lower triangle of `a: (k, k)` into the upper one.
pub(super) fn symmetrise_from_lower(a: &mut Array2<f64>) {
    for i in 0..a.nrows() {
        for j in 0..i {
            a[[j, i]] = a[[i, j]];
        }
    }
}

/// The Cholesky factorisation met a pivot that is not positive: the matrix is not
/// (numerically) positive definite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotPositiveDefinite {
    /// Index of the failing pivot.
    pub pivot: usize,
}

/// Solves `a · x = b` for a symmetric positive definite `a: (m, m)` and `b: (m, k)`,
/// reading only the lower triangle of `a`, which is overwritten by the factor.
///
/// Why a Cholesky solve and not `a⁻¹ b`: factorising `a = L Lᵀ` and solving the two
/// triangular systems costs `m³ / 3 + 2 m² k` flops, a third of what forming the inverse
/// costs; it is backward stable (the computed `x` solves a system within rounding of
/// `a`, so the residual `a x − b` stays at rounding level, where a computed inverse can
/// leave one `κ(a)` times larger); and it stops at the first non-positive pivot when
/// `a` is not positive definite, instead of returning a meaningless answer.
pub(super) fn solve_spd(
    mut a: Mat<f64>,
    b: ArrayView2<'_, f64>,
) -> Result<Array2<f64>, NotPositiveDefinite> {
    assert_eq!(a.nrows(), a.ncols(), "solve_spd: the matrix must be square");
    assert_eq!(a.nrows(), b.nrows(), "solve_spd: right-hand side rows");
    let m = a.nrows();

    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
        m,
        PAR,
        Default::default(),
    ));
    // No dynamic regularisation (the default): a non-positive pivot is an error, not
    // silently replaced.
    llt::factor::cholesky_in_place(
        a.as_mut(),
        LltRegularization::default(),
        PAR,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|err| match err {
        llt::factor::LltError::NonPositivePivot { index } => NotPositiveDefinite { pivot: index },
    })?;

    let mut x = to_faer(b);
    let mut mem = MemBuffer::new(llt::solve::solve_in_place_scratch::<f64>(m, x.ncols(), PAR));
    llt::solve::solve_in_place(a.as_ref(), x.as_mut(), PAR, MemStack::new(&mut mem));
    Ok(to_ndarray(x.as_ref()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn conversions_keep_every_entry_in_place() {
        let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let f = to_faer(a.view());
        assert_eq!((f.nrows(), f.ncols()), (2, 3));
        assert_eq!(f[(1, 0)], 4.0);
        assert_eq!(f[(0, 2)], 3.0);
        assert_eq!(to_ndarray(f.as_ref()), a);
        // A transposed (non-standard layout) view converts as it reads.
        assert_eq!(to_ndarray(to_faer(a.t()).as_ref()), a.t());
    }

    #[test]
    fn add_lower_gram_fills_the_lower_triangle() {
        let a = array![[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]];
        let mut dst = array![[1.0, 7.0], [0.0, 1.0]];
        add_lower_gram(faer_mut(&mut dst), a.view(), 2.0);
        // 2 aᵀa = [[20, 28], [28, 42]]; the 7 above the diagonal is untouched.
        assert_eq!(dst, array![[21.0, 7.0], [28.0, 43.0]]);

        // Same from a non-contiguous view, into a column-major faer matrix.
        let mut dst = Mat::<f64>::zeros(2, 2);
        add_lower_gram(dst.as_mut(), a.t().t(), -1.0);
        let mut dst = to_ndarray(dst.as_ref());
        symmetrise_from_lower(&mut dst);
        assert_eq!(dst, array![[-10.0, -14.0], [-14.0, -21.0]]);
    }

    #[test]
    fn solves_a_small_spd_system() {
        // a = [[4, 2], [2, 3]], x = [[1, 0], [−1, 2]] → a·x = [[2, 4], [−1, 6]]
        let a = array![[4.0, 2.0], [2.0, 3.0]];
        let b = array![[2.0, 4.0], [-1.0, 6.0]];
        let x = solve_spd(to_faer(a.view()), b.view()).unwrap();
        let expected = array![[1.0, 0.0], [-1.0, 2.0]];
        assert!((&x - &expected).iter().all(|d| d.abs() < 1e-14), "{x}");
    }

    #[test]
    fn reads_only_the_lower_triangle() {
        let a = array![[4.0, 1e9], [2.0, 3.0]];
        let b = array![[2.0], [-1.0]];
        let x = solve_spd(to_faer(a.view()), b.view()).unwrap();
        assert!((x[[0, 0]] - 1.0).abs() < 1e-14 && (x[[1, 0]] + 1.0).abs() < 1e-14);
    }

    #[test]
    fn refuses_a_matrix_that_is_not_positive_definite() {
        // Eigenvalues 3 and −1.
        let a = array![[1.0, 2.0], [2.0, 1.0]];
        let b = array![[1.0], [1.0]];
        assert_eq!(
            solve_spd(to_faer(a.view()), b.view()),
            Err(NotPositiveDefinite { pivot: 1 })
        );
    }
}

//! The head's matrix product, `head::matmul_into`, against a plain triple loop in
//! `f64` (proptest): products of up to `GEMV_ROWS` rows take faer's kernels, larger
//! ones ndarray's, and both must agree with the reference for every operand
//! layout the head passes (row-major, and transposed views), with and without
//! accumulation.

use continual::head::{GEMV_ROWS, matmul_into, times_transposed};
use ndarray::{Array2, ArrayView2};
use proptest::prelude::*;

/// `c0 + a·b` (or `a·b`), summed in `f64`.
fn reference(a: ArrayView2<f32>, b: ArrayView2<f32>, c0: Option<&Array2<f32>>) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| {
        let start = c0.map_or(0.0, |c| f64::from(c[[i, j]]));
        (0..k).fold(start, |s, l| {
            s + f64::from(a[[i, l]]) * f64::from(b[[l, j]])
        })
    })
}

/// Deterministic values in `[−1, 1)` from a seed (a hash, no generator needed).
fn filled(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let h = (seed ^ (((i as u64) << 32) | j as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

/// `|got − want| ≤ 1e-5 · (1 + Σ|a_il·b_lj|)` elementwise: f32 rounding of a sum
/// of `k` products is bounded by `k·ε` times the sum of their magnitudes.
fn assert_close(got: &Array2<f32>, want: &Array2<f64>, a: ArrayView2<f32>, b: ArrayView2<f32>) {
    let scale = reference(a.mapv(f32::abs).view(), b.mapv(f32::abs).view(), None);
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let tol = 1e-5 * (1.0 + scale[idx]);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "element {idx:?}: {g} against {w} (tolerance {tol:e})"
        );
    }
}

/// `matmul_into` on an `(m, k)·(k, n)` product against the reference. A
/// transposed operand is the `.t()` view of a row-major array, as in the
/// backward pass (`d_yᵀ·a`) and in `times_transposed` (`x·wᵀ`).
fn check_product(
    (m, k, n): (usize, usize, usize),
    a_transposed: bool,
    b_transposed: bool,
    accumulate: bool,
    seed: u64,
) {
    let a_store = if a_transposed {
        filled(k, m, seed)
    } else {
        filled(m, k, seed)
    };
    let b_store = if b_transposed {
        filled(n, k, !seed)
    } else {
        filled(k, n, !seed)
    };
    let a = if a_transposed {
        a_store.t()
    } else {
        a_store.view()
    };
    let b = if b_transposed {
        b_store.t()
    } else {
        b_store.view()
    };
    let c0 = filled(m, n, seed.rotate_left(7));

    let mut c = c0.clone();
    matmul_into(a, b, accumulate, &mut c);

    let want = reference(a, b, accumulate.then_some(&c0));
    assert_close(&c, &want, a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matmul_into_matches_the_reference(
        m in 1usize..(2 * GEMV_ROWS + 3),
        k in 1usize..70,
        n in 1usize..70,
        a_transposed in any::<bool>(),
        b_transposed in any::<bool>(),
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check_product((m, k, n), a_transposed, b_transposed, accumulate, seed);
    }
}

#[test]
fn one_row_times_a_transposed_weight_matrix_by_hand() {
    // y = x·wᵀ with x = [1, 2, 3] and w = [[1, 0, −1], [0.5, 0.5, 0.5]]:
    // y0 = 1 − 3 = −2, y1 = 0.5·(1 + 2 + 3) = 3; accumulating onto [1, 1] adds one.
    let x = ndarray::array![[1.0_f32, 2.0, 3.0]];
    let w = ndarray::array![[1.0_f32, 0.0, -1.0], [0.5, 0.5, 0.5]];
    let mut y = Array2::zeros((1, 2));
    times_transposed(x.view(), w.view(), false, &mut y);
    assert_eq!(y, ndarray::array![[-2.0, 3.0]]);
    y.fill(1.0);
    times_transposed(x.view(), w.view(), true, &mut y);
    assert_eq!(y, ndarray::array![[-1.0, 4.0]]);
}

#[test]
fn small_products_above_the_threading_size_match_the_reference() {
    // The head's products at (256, 10, 128): forward x·wᵀ (128, 256, 10) and the
    // weight gradient d_yᵀ·x (10, 128, 256). matrixmultiply would hand both to
    // its threads (m·k + k·n ≥ 2¹⁵); matmul_into cuts them into pieces of rows
    // or columns first. Also shapes whose pieces do not divide them evenly, one
    // too large to cut (k·n + k ≥ 2¹⁵), and every operand layout.
    let shapes = [
        (128, 256, 10),
        (10, 128, 256),
        (300, 130, 7),
        (7, 130, 300),
        (5, 40000, 1),
    ];
    for (m, k, n) in shapes {
        for layout in 0..8 {
            let (a_transposed, b_transposed, accumulate) =
                (layout & 1 == 1, layout & 2 == 2, layout & 4 == 4);
            check_product((m, k, n), a_transposed, b_transposed, accumulate, 3);
        }
    }
}

#[test]
fn an_empty_summed_dimension_gives_zeros_or_keeps_the_accumulator() {
    let a = Array2::<f32>::zeros((9, 0));
    let b = Array2::<f32>::zeros((0, 5));
    let mut c = filled(9, 5, 1);
    let before = c.clone();
    matmul_into(a.view(), b.view(), true, &mut c);
    assert_eq!(c, before);
    matmul_into(a.view(), b.view(), false, &mut c);
    assert_eq!(c, Array2::<f32>::zeros((9, 5)));
}

//! Exemplar memory: a total budget of `K` stored samples, `m = ⌊K / t⌋` per
//! class, chosen by herding, and the class means used by the nearest-mean-of-
//! exemplars (NME) classifier.
//!
//! Shapes: `phi: (n, n_repr)` holds representations `φ(x)` row by row;
//! `means: (n_classes, n_repr)` one unit-length class mean per row.

mod herding;

pub use herding::herding;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// One stored sample: the frozen feature vector (the head's input) and optional
/// metadata such as the image's source path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// The feature vector `x`, of the learner's dimension `d`.
    pub x: Vec<f32>,
    /// Free-form metadata kept with the sample (e.g. a source path).
    pub meta: Option<String>,
}

/// Exemplars per class, `m = ⌊budget / n_classes⌋`, so that
/// `m · n_classes ≤ budget` for every number of classes (`0` classes → `0`).
pub fn per_class(budget: usize, n_classes: usize) -> usize {
    budget.checked_div(n_classes).unwrap_or(0)
}

/// Scales every row to unit L2 norm; an all-zero row stays zero (it has no
/// direction, and dividing would produce NaN).
pub fn normalise_rows(phi: &mut Array2<f32>) {
    for mut row in phi.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
}

/// The class mean for NME: the mean of the L2-normalised rows of `phi`,
/// renormalised to unit length. An empty `phi` gives a zero vector.
pub fn class_mean(phi: ArrayView2<f32>) -> Array1<f32> {
    let mut unit = phi.to_owned();
    normalise_rows(&mut unit);
    let mut mean = unit
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(phi.ncols()));
    let norm = mean.dot(&mean).sqrt();
    if norm > 0.0 {
        mean /= norm;
    }
    mean
}

/// NME scores `(n, n_classes)`: the cosine similarity between each normalised
/// `φ(x)` and each unit class mean (higher is closer; on unit vectors the
/// nearest mean in L2 is the one with the highest cosine).
pub fn cosine_scores(phi: ArrayView2<f32>, means: ArrayView2<f32>) -> Array2<f32> {
    let mut unit = phi.to_owned();
    normalise_rows(&mut unit);
    let mut scores = Array2::zeros((unit.nrows(), means.nrows()));
    crate::head::times_transposed(unit.view(), means, false, &mut scores);
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn per_class_never_exceeds_the_budget() {
        assert_eq!(per_class(2000, 30), 66);
        assert!(per_class(2000, 30) * 30 <= 2000);
        assert_eq!(per_class(5, 10), 0);
        assert_eq!(per_class(2000, 0), 0);
    }

    #[test]
    fn class_mean_of_normalised_rows_is_renormalised() {
        // Rows (3, 0) and (0, 2) normalise to (1, 0), (0, 1); their mean is
        // (0.5, 0.5), renormalised to (1/√2, 1/√2).
        let mean = class_mean(array![[3.0, 0.0], [0.0, 2.0]].view());
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((mean[0] - h).abs() < 1e-7 && (mean[1] - h).abs() < 1e-7);
    }

    #[test]
    fn cosine_scores_rank_by_angle() {
        let means = array![[1.0, 0.0], [0.0, 1.0]];
        let scores = cosine_scores(array![[2.0, 1.0], [0.0, -1.0]].view(), means.view());
        // (2, 1)/√5 = (0.894, 0.447); (0, −1) is opposite class 1.
        assert!((scores[[0, 0]] - 2.0 / 5f32.sqrt()).abs() < 1e-6);
        assert!((scores[[1, 1]] + 1.0).abs() < 1e-6);
        assert!(scores[[0, 0]] > scores[[0, 1]]);
    }

    #[test]
    fn zero_rows_stay_zero() {
        let mut phi = array![[0.0, 0.0], [3.0, 4.0]];
        normalise_rows(&mut phi);
        assert_eq!(phi, array![[0.0, 0.0], [0.6, 0.8]]);
    }
}

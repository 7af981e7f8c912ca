//! Running per-class counts and sums, and optionally the total scatter, of feature
//! vectors: the sufficient statistics every learner in this module is solved from.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use serde::{Deserialize, Serialize};

use super::linalg::{add_lower_gram, faer_mut};

/// Sums over every sample seen so far, shifted by a fixed vector.
///
/// With `h_i` the samples, `c_i` their classes and `shift` fixed at the first update:
///
/// - `counts[c] = #{i : c_i = c}`
/// - `sums: (n_classes, dim)`, row `c` = `Σ_{i : c_i = c} (h_i − shift)`
/// - `scatter: (dim, dim)` = `Σ_i (h_i − shift)(h_i − shift)ᵀ`, when kept; only its
///   lower triangle (diagonal included) is kept up to date.
///
/// The shift is the mean of the first update when the scatter is kept (zero
/// otherwise). Covariances are differences `scatter − Σ_c sums_c sums_cᵀ / counts_c`;
/// on raw features with a large common offset both terms would be of the order of
/// `n · |offset|²` and their difference would lose the digits the offset takes up.
/// Centring on a rough mean keeps both terms of the order of the spread. Any shift is
/// exact in real arithmetic, so it need not be the mean of all the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Moments {
    counts: Vec<u64>,
    sums: Array2<f64>,
    shift: Array1<f64>,
    scatter: Option<Array2<f64>>,
}

impl Moments {
    /// Empty statistics of `dim`-dimensional samples, with a scatter matrix if asked.
    pub fn new(dim: usize, keep_scatter: bool) -> Self {
        Moments {
            counts: Vec::new(),
            sums: Array2::zeros((0, dim)),
            shift: Array1::zeros(dim),
            scatter: keep_scatter.then(|| Array2::zeros((dim, dim))),
        }
    }

    /// These statistics with the samples `h: (n_batch, dim)` of classes `labels` added.
    ///
    /// `labels` must already be checked (see `check_step`): `n_classes` is the number
    /// of classes after the step. `self` is left as it was, so that a caller can keep
    /// the old statistics if solving with the new ones fails.
    pub fn with_step(&self, h: ArrayView2<'_, f64>, labels: &[usize], n_classes: usize) -> Self {
        assert_eq!(h.nrows(), labels.len(), "with_step: one label per sample");
        assert_eq!(h.ncols(), self.dim(), "with_step: sample dimension");
        let mut next = Moments {
            counts: self.counts.clone(),
            sums: Array2::zeros((n_classes, self.dim())),
            shift: self.shift.clone(),
            scatter: self.scatter.clone(),
        };
        next.counts.resize(n_classes, 0);
        next.sums
            .slice_mut(s![..self.n_classes(), ..])
            .assign(&self.sums);
        if self.total() == 0 && self.scatter.is_some() {
            next.shift = h.mean_axis(Axis(0)).expect("with_step: a step has samples");
        }

        let centred = &h - &next.shift;
        for (row, &label) in centred.rows().into_iter().zip(labels) {
            next.counts[label] += 1;
            let mut sum = next.sums.row_mut(label);
            sum += &row;
        }
        if let Some(scatter) = next.scatter.as_mut() {
            add_lower_gram(faer_mut(scatter), centred.view(), 1.0);
        }
        next
    }

    /// Dimension of the samples.
    pub fn dim(&self) -> usize {
        self.sums.ncols()
    }

    /// Number of classes seen.
    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    /// Number of samples seen.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// `sums: (n_classes, dim)`, per-class sums of `h − shift`.
    pub fn sums(&self) -> &Array2<f64> {
        &self.sums
    }

    /// `shift: (dim)`.
    pub fn shift(&self) -> &Array1<f64> {
        &self.shift
    }

    /// `scatter: (dim, dim)`, `Σ_i (h_i − shift)(h_i − shift)ᵀ`, if kept: the lower
    /// triangle only, the rest is not meaningful.
    pub fn scatter(&self) -> Option<&Array2<f64>> {
        self.scatter.as_ref()
    }

    /// `means: (n_classes, dim)`, `μ_c = shift + sums_c / counts_c`.
    pub fn means(&self) -> Array2<f64> {
        let mut means = self.sums.clone();
        for (mut mean, &count) in means.rows_mut().into_iter().zip(&self.counts) {
            mean /= count as f64;
            mean += &self.shift;
        }
        means
    }

    /// `root_weighted_sums: (n_classes, dim)`, rows `sums_c / √counts_c`, so that
    /// `aᵀ a = Σ_c sums_c sums_cᵀ / counts_c` is the between-class part of the scatter.
    pub fn root_weighted_sums(&self) -> Array2<f64> {
        let mut a = self.sums.clone();
        for (mut row, &count) in a.rows_mut().into_iter().zip(&self.counts) {
            row /= (count as f64).sqrt();
        }
        a
    }

    /// Whether these are statistics of `dim`-dimensional samples, with a scatter matrix
    /// or not as `keep_scatter` says, whose arrays have the sizes their counts imply and
    /// whose classes all have samples (a check on loaded state).
    pub fn is_consistent(&self, dim: usize, keep_scatter: bool) -> bool {
        let scatter_ok = match &self.scatter {
            Some(scatter) => keep_scatter && scatter.dim() == (dim, dim),
            None => !keep_scatter,
        };
        scatter_ok
            && self.sums.dim() == (self.counts.len(), dim)
            && self.shift.len() == dim
            && self.counts.iter().all(|&c| c > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn sums_counts_and_scatter_of_two_steps() {
        let first = array![[1.0, 2.0], [3.0, 2.0]];
        let second = array![[5.0, 0.0]];
        let m = Moments::new(2, true)
            .with_step(first.view(), &[0, 0], 1)
            .with_step(second.view(), &[1], 2);

        // The shift is the first step's mean, (2, 2).
        assert_eq!(m.shift(), &array![2.0, 2.0]);
        assert_eq!(m.counts(), &[2, 1]);
        // Centred rows: (−1, 0), (1, 0) of class 0 and (3, −2) of class 1.
        assert_eq!(m.sums(), &array![[0.0, 0.0], [3.0, -2.0]]);
        assert_eq!(m.means(), array![[2.0, 2.0], [5.0, 0.0]]);
        // (−1,0)(−1,0)ᵀ + (1,0)(1,0)ᵀ + (3,−2)(3,−2)ᵀ = [[11, −6], [−6, 4]], lower part.
        assert_eq!(m.scatter().unwrap(), &array![[11.0, 0.0], [-6.0, 4.0]]);
        assert!(m.is_consistent(2, true));
        assert!(!m.is_consistent(2, false) && !m.is_consistent(3, true));
    }

    #[test]
    fn without_scatter_the_sums_are_not_shifted() {
        let m = Moments::new(2, false).with_step(array![[1.0, 2.0]].view(), &[0], 1);
        assert_eq!(m.sums(), &array![[1.0, 2.0]]);
        assert!(m.scatter().is_none());
    }

    #[test]
    fn a_step_leaves_the_statistics_it_started_from_unchanged() {
        let m = Moments::new(2, true).with_step(array![[1.0, 2.0]].view(), &[0], 1);
        let before = m.clone();
        let _ = m.with_step(array![[7.0, 7.0]].view(), &[1], 2);
        assert_eq!(m.sums(), before.sums());
        assert_eq!(m.counts(), before.counts());
    }
}

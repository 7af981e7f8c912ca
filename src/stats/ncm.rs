//! Nearest class mean on all data: cosine similarity to the mean direction of each
//! class's L2-normalised features, exact for any order and size of steps.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::accumulate::Moments;
use super::{check_features, check_step, inconsistent};
use crate::{Error, Result};

/// Nearest-class-mean classifier over every sample seen (not only stored exemplars).
///
/// With `x̂ = x / |x|`: `means: (n_classes, dim)`, `m_c = Σ_{i in c} x̂_i / |Σ_{i in c} x̂_i|`
/// (the mean of the normalised features, renormalised), and
/// `scores: (n_batch, n_classes)`, `s_c(x) = x̂ · m_c ∈ [−1, 1]`, the cosine similarity.
///
/// A zero feature vector has no direction: it is counted but adds nothing to the
/// means, and it scores 0 for every class. A class whose normalised features sum to
/// zero likewise gets a zero mean and scores 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "NcmState")]
pub struct Ncm {
    moments: Moments,
    means: Array2<f64>,
}

/// [`Ncm`] as stored, checked by `TryFrom` before it becomes one (same fields, same
/// order).
#[derive(Deserialize)]
struct NcmState {
    moments: Moments,
    means: Array2<f64>,
}

impl TryFrom<NcmState> for Ncm {
    type Error = Error;

    fn try_from(state: NcmState) -> Result<Self> {
        let ncm = Ncm {
            moments: state.moments,
            means: state.means,
        };
        let dim = ncm.dim();
        if dim == 0
            || !ncm.moments.is_consistent(dim, false)
            || ncm.means.dim() != (ncm.n_classes(), dim)
        {
            return Err(inconsistent("ncm"));
        }
        Ok(ncm)
    }
}

impl Ncm {
    /// A learner of `dim`-dimensional features that knows no class yet.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `dim` is 0.
    pub fn new(dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Config(
                "ncm: the feature dimension must be positive".into(),
            ));
        }
        Ok(Ncm {
            moments: Moments::new(dim, false),
            means: Array2::zeros((0, dim)),
        })
    }

    /// Adds the samples `x: (n_batch, dim)` of classes `labels` and recomputes the means.
    ///
    /// New classes take the next indices `n_classes, n_classes + 1, …`, each with at
    /// least one sample in this step. On error the learner is unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` does not have `dim` columns, [`Error::EmptyStep`] if it
    /// has no rows, [`Error::InvalidLabel`] if `labels` has another length or skips a
    /// class, [`Error::NonFinite`] on NaN or infinite features.
    pub fn update(&mut self, x: ArrayView2<'_, f32>, labels: &[usize]) -> Result<()> {
        let n_classes = check_step("ncm update", x, self.dim(), labels, self.n_classes())?;
        self.moments = self
            .moments
            .with_step(normalised(x).view(), labels, n_classes);
        self.means = self.moments.sums().clone();
        normalise_rows(&mut self.means);
        debug!(
            n_batch = x.nrows(),
            n_classes,
            n_seen = self.moments.total(),
            "ncm updated"
        );
        Ok(())
    }

    /// `scores: (n_batch, n_classes)` of `x: (n_batch, dim)`: cosine similarities to the
    /// class means, higher meaning more likely.
    ///
    /// # Errors
    ///
    /// [`Error::NoClasses`] before the first update, [`Error::Shape`] if `x` does not
    /// have `dim` columns, [`Error::NonFinite`] on NaN or infinite features.
    pub fn scores(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.n_classes() == 0 {
            return Err(Error::NoClasses);
        }
        check_features("ncm scores", x, self.dim())?;
        let scores = normalised(x).dot(&self.means.t());
        Ok(scores.mapv(|s| s as f32))
    }

    /// Number of classes learned.
    pub fn n_classes(&self) -> usize {
        self.moments.n_classes()
    }

    /// Dimension of the features.
    pub fn dim(&self) -> usize {
        self.moments.dim()
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        self.moments.counts()
    }

    /// `means: (n_classes, dim)`, the unit mean directions `m_c`.
    pub fn means(&self) -> &Array2<f64> {
        &self.means
    }
}

/// `x̂: (n_batch, dim)`, the rows of `x` scaled to unit length, in `f64`.
fn normalised(x: ArrayView2<'_, f32>) -> Array2<f64> {
    let mut x = x.mapv(f64::from);
    normalise_rows(&mut x);
    x
}

/// Scales each row to unit length, leaving zero rows at zero.
fn normalise_rows(a: &mut Array2<f64>) {
    for mut row in a.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn means_are_directions_and_scores_are_cosines() {
        // Class 0: (3, 0) and (0, 5) normalise to (1, 0) and (0, 1); their mean direction
        // is (1, 1)/√2. Class 1: (0, −2) → (0, −1).
        let mut ncm = Ncm::new(2).unwrap();
        ncm.update(array![[3.0_f32, 0.0], [0.0, -2.0]].view(), &[0, 1])
            .unwrap();
        ncm.update(array![[0.0_f32, 5.0]].view(), &[0]).unwrap();
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!(
            (ncm.means() - &array![[h, h], [0.0, -1.0]])
                .iter()
                .all(|d| d.abs() < 1e-15)
        );

        // x = (2, 0): cos with (1, 1)/√2 is 1/√2, with (0, −1) is 0. A zero row scores 0.
        let s = ncm
            .scores(array![[2.0_f32, 0.0], [0.0, 0.0]].view())
            .unwrap();
        assert!((s[[0, 0]] - h as f32).abs() < 1e-7 && s[[0, 1]].abs() < 1e-7);
        assert_eq!(s.row(1).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn opposite_samples_give_a_zero_mean() {
        let mut ncm = Ncm::new(2).unwrap();
        ncm.update(array![[1.0_f32, 1.0], [-2.0, -2.0]].view(), &[0, 0])
            .unwrap();
        assert_eq!(ncm.means(), &array![[0.0, 0.0]]);
    }
}

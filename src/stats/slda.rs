//! Streaming linear discriminant analysis: class means and one shared, shrunk
//! covariance, exact for any order and size of steps.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::accumulate::Moments;
use super::linalg::{add_lower_gram, solve_spd, symmetrise_from_lower, to_faer};
use super::{check_features, check_step, inconsistent, not_positive_definite};
use crate::{Error, Result};

/// Hyper-parameters of [`Slda`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SldaConfig {
    /// Shrinkage `ε ∈ [0, 1]` of the covariance towards the identity:
    /// `Σ_s = (1 − ε) Σ + ε I`. It keeps `Σ_s` invertible when there are fewer samples
    /// than dimensions. Default `1e-4`, as in Hayes & Kanan (2020).
    pub shrinkage: f64,
}

impl Default for SldaConfig {
    fn default() -> Self {
        SldaConfig { shrinkage: 1e-4 }
    }
}

/// Streaming linear discriminant analysis on frozen features.
///
/// With `N` samples seen, `n_c` of class `c`, class means `μ_c` and
/// `M: (n_classes, dim)` their rows:
///
/// - shared covariance `Σ = (Σ_i x_i x_iᵀ − Σ_c n_c μ_c μ_cᵀ) / N`, from running sums
///   (no second pass over the data), shrunk to `Σ_s = (1 − ε) Σ + ε I`;
/// - `weights: (dim, n_classes)`, `W = Σ_s⁻¹ Mᵀ`, found by solving `Σ_s W = Mᵀ` for all
///   classes at once; `bias: (n_classes)`, `b_c = −½ μ_cᵀ w_c`;
/// - `scores = x W + b`.
///
/// The scores are linear discriminants: the log-likelihood of `x` under a Gaussian of
/// mean `μ_c` and covariance `Σ_s`, up to a constant shared by all classes. The largest
/// one is the most likely class under equal priors; they are not probabilities.
///
/// The classifier is re-solved after every update (`dim³ / 3` flops), so [`Slda::scores`]
/// is one matrix product.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SldaState")]
pub struct Slda {
    config: SldaConfig,
    moments: Moments,
    weights: Array2<f64>,
    bias: Array1<f64>,
}

/// [`Slda`] as stored, checked by `TryFrom` before it becomes one (same fields, same
/// order).
#[derive(Deserialize)]
struct SldaState {
    config: SldaConfig,
    moments: Moments,
    weights: Array2<f64>,
    bias: Array1<f64>,
}

impl TryFrom<SldaState> for Slda {
    type Error = Error;

    fn try_from(state: SldaState) -> Result<Self> {
        let slda = Slda {
            config: state.config,
            moments: state.moments,
            weights: state.weights,
            bias: state.bias,
        };
        check_config(slda.config)?;
        let (dim, n_classes) = (slda.dim(), slda.n_classes());
        if dim == 0
            || !slda.moments.is_consistent(dim, true)
            || slda.weights.dim() != (dim, n_classes)
            || slda.bias.len() != n_classes
        {
            return Err(inconsistent("slda"));
        }
        Ok(slda)
    }
}

fn check_config(config: SldaConfig) -> Result<()> {
    if !(0.0..=1.0).contains(&config.shrinkage) {
        return Err(Error::Config(format!(
            "slda: shrinkage must be in [0, 1], got {}",
            config.shrinkage
        )));
    }
    Ok(())
}

impl Slda {
    /// A learner of `dim`-dimensional features that knows no class yet.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `dim` is 0 or the shrinkage is not in `[0, 1]`.
    pub fn new(dim: usize, config: SldaConfig) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Config(
                "slda: the feature dimension must be positive".into(),
            ));
        }
        check_config(config)?;
        Ok(Slda {
            config,
            moments: Moments::new(dim, true),
            weights: Array2::zeros((dim, 0)),
            bias: Array1::zeros(0),
        })
    }

    /// Adds the samples `x: (n_batch, dim)` of classes `labels` and re-solves.
    ///
    /// New classes take the next indices `n_classes, n_classes + 1, …`, each with at
    /// least one sample in this step. On error the learner is unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` does not have `dim` columns, [`Error::EmptyStep`] if it
    /// has no rows, [`Error::InvalidLabel`] if `labels` has another length or skips a
    /// class, [`Error::NonFinite`] on NaN or infinite features, and [`Error::Config`] if
    /// the shrunk covariance is not positive definite (shrinkage 0 with fewer samples
    /// than dimensions, or constant features).
    pub fn update(&mut self, x: ArrayView2<'_, f32>, labels: &[usize]) -> Result<()> {
        let n_classes = check_step("slda update", x, self.dim(), labels, self.n_classes())?;
        let moments = self
            .moments
            .with_step(x.mapv(f64::from).view(), labels, n_classes);
        let (weights, bias) = solve(&moments, self.config.shrinkage)?;

        self.moments = moments;
        self.weights = weights;
        self.bias = bias;
        debug!(
            n_batch = x.nrows(),
            n_classes,
            n_seen = self.moments.total(),
            "slda updated"
        );
        Ok(())
    }

    /// `scores: (n_batch, n_classes)` of `x: (n_batch, dim)`: linear discriminants,
    /// higher meaning more likely.
    ///
    /// # Errors
    ///
    /// [`Error::NoClasses`] before the first update, [`Error::Shape`] if `x` does not
    /// have `dim` columns, [`Error::NonFinite`] on NaN or infinite features.
    pub fn scores(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.n_classes() == 0 {
            return Err(Error::NoClasses);
        }
        check_features("slda scores", x, self.dim())?;
        let scores = x.mapv(f64::from).dot(&self.weights) + &self.bias;
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

    /// The hyper-parameters.
    pub fn config(&self) -> SldaConfig {
        self.config
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        self.moments.counts()
    }

    /// `means: (n_classes, dim)`, the class means `μ_c`.
    pub fn means(&self) -> Array2<f64> {
        self.moments.means()
    }

    /// `covariance: (dim, dim)`, the shared within-class covariance `Σ` before
    /// shrinkage (divided by `N`, not `N − n_classes`).
    pub fn covariance(&self) -> Array2<f64> {
        let mut scatter = self
            .moments
            .scatter()
            .expect("slda keeps a scatter matrix")
            .clone();
        symmetrise_from_lower(&mut scatter);
        let a = self.moments.root_weighted_sums();
        let n = self.moments.total().max(1) as f64;
        (scatter - &a.t().dot(&a)) / n
    }

    /// `weights: (dim, n_classes)`, `W = Σ_s⁻¹ Mᵀ`.
    pub fn weights(&self) -> &Array2<f64> {
        &self.weights
    }

    /// `bias: (n_classes)`, `b_c = −½ μ_cᵀ w_c`.
    pub fn bias(&self) -> &Array1<f64> {
        &self.bias
    }
}

/// Solves for `(weights, bias)` from the statistics.
fn solve(moments: &Moments, shrinkage: f64) -> Result<(Array2<f64>, Array1<f64>)> {
    let scatter = moments.scatter().expect("slda keeps a scatter matrix");
    let n = moments.total() as f64;
    let dim = moments.dim();

    // `Σ_s = (1 − ε)/N · (scatter − aᵀa) + ε I`, built directly in the solver's storage;
    // only its lower triangle is meaningful, and only that is read.
    let mut system = to_faer(scatter.view());
    add_lower_gram(system.as_mut(), moments.root_weighted_sums().view(), -1.0);
    let keep = (1.0 - shrinkage) / n;
    for j in 0..dim {
        for i in j..dim {
            system[(i, j)] *= keep;
        }
        system[(j, j)] += shrinkage;
    }

    let means = moments.means();
    let weights = solve_spd(system, means.t())
        .map_err(|e| not_positive_definite("slda", e.pivot, "shrinkage", shrinkage))?;
    let bias = (&means * &weights.t()).sum_axis(Axis(1)) * -0.5;
    Ok((weights, bias))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn two_classes_with_identity_covariance_split_at_the_midpoint() {
        // Each class is its mean plus the offsets (±1, 0) and (0, ±1): μ_0 = (0, 0),
        // μ_1 = (4, 0), N = 8.
        let x = array![
            [-1.0_f32, 0.0],
            [1.0, 0.0],
            [0.0, -1.0],
            [0.0, 1.0],
            [3.0, 0.0],
            [5.0, 0.0],
            [4.0, -1.0],
            [4.0, 1.0],
        ];
        let labels = [0, 0, 0, 0, 1, 1, 1, 1];
        let mut slda = Slda::new(2, SldaConfig { shrinkage: 0.0 }).unwrap();
        slda.update(x.view(), &labels).unwrap();

        // Σ_xx = (1 + 1 + 1 + 1) / 8 = 0.5 (two offsets of ±1 per class), Σ_yy = 0.5,
        // Σ_xy = 0: Σ = 0.5 I.
        let cov = slda.covariance();
        assert!(
            (&cov - &array![[0.5, 0.0], [0.0, 0.5]])
                .iter()
                .all(|d| d.abs() < 1e-12)
        );
        // W = Σ⁻¹ Mᵀ = 2 Mᵀ: w_0 = (0, 0), w_1 = (8, 0); b_0 = 0, b_1 = −½ · 4 · 8 = −16.
        let expected_w = array![[0.0, 8.0], [0.0, 0.0]];
        assert!(
            (slda.weights() - &expected_w)
                .iter()
                .all(|d| d.abs() < 1e-12)
        );
        assert!(
            (slda.bias() - &array![0.0, -16.0])
                .iter()
                .all(|d| d.abs() < 1e-12)
        );
        // s_1 − s_0 = 8 x − 16: the boundary is x = 2, the midpoint of the means.
        let s = slda
            .scores(array![[2.0_f32, 3.0], [1.9, 0.0], [2.1, -7.0]].view())
            .unwrap();
        assert!((s[[0, 1]] - s[[0, 0]]).abs() < 1e-5);
        assert!((s[[1, 1]] - s[[1, 0]] + 0.8).abs() < 1e-5);
        assert!((s[[2, 1]] - s[[2, 0]] - 0.8).abs() < 1e-5);
    }

    #[test]
    fn without_shrinkage_too_few_samples_is_a_config_error() {
        let mut slda = Slda::new(3, SldaConfig { shrinkage: 0.0 }).unwrap();
        let err = slda.update(array![[1.0_f32, 2.0, 3.0], [2.0, 2.0, 2.0]].view(), &[0, 1]);
        match err {
            Err(Error::Config(msg)) => assert!(msg.contains("raise shrinkage"), "{msg}"),
            other => panic!("expected a Config error, got {other:?}"),
        }
        // The learner is unchanged.
        assert_eq!(slda.n_classes(), 0);
        assert!(matches!(
            slda.scores(array![[0.0_f32, 0.0, 0.0]].view()),
            Err(Error::NoClasses)
        ));
    }

    #[test]
    fn one_sample_is_enough_with_shrinkage() {
        let mut slda = Slda::new(2, SldaConfig::default()).unwrap();
        slda.update(array![[1.0_f32, 2.0]].view(), &[0]).unwrap();
        // Σ = 0, Σ_s = ε I: w = μ / ε.
        let w = slda.weights().column(0).to_owned();
        assert!((w - array![1e4, 2e4]).iter().all(|d| d.abs() < 1e-8));
    }

    #[test]
    fn an_inconsistent_stored_state_is_refused_on_loading() {
        let mut slda = Slda::new(2, SldaConfig::default()).unwrap();
        slda.update(array![[1.0_f32, 2.0]].view(), &[0]).unwrap();
        let config = bincode::config::standard();
        let decode = |slda: &Slda| {
            let bytes = bincode::serde::encode_to_vec(slda, config).unwrap();
            bincode::serde::decode_from_slice::<Slda, _>(&bytes, config).map(|(s, _)| s)
        };
        assert!(decode(&slda).is_ok());

        let mut bad = slda.clone();
        bad.bias = Array1::zeros(3);
        assert!(decode(&bad).is_err());
        let mut bad = slda;
        bad.config.shrinkage = 2.0;
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn bad_configurations_are_refused() {
        for shrinkage in [-0.1, 1.5, f64::NAN] {
            assert!(matches!(
                Slda::new(2, SldaConfig { shrinkage }),
                Err(Error::Config(_))
            ));
        }
        assert!(matches!(
            Slda::new(0, SldaConfig::default()),
            Err(Error::Config(_))
        ));
    }
}

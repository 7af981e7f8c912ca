//! Ridge-regression classifier from an accumulated Gram matrix, on the features or on
//! a fixed random ReLU projection of them; exact for any order and size of steps.

use faer::Mat;
use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use ndarray_rand::RandomExt;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand_distr::Normal;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::accumulate::Moments;
use super::linalg::{solve_spd, with_faer};
use super::{check_features, check_step, inconsistent, not_positive_definite};
use crate::{Error, Result};

/// Hyper-parameters of [`Ridge`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RidgeConfig {
    /// Ridge penalty `λ ≥ 0` on the weights (not on the bias). Its scale is that of
    /// `|h|²` summed over samples: with more data the same `λ` regularises less. With
    /// a projection it usually needs to be far larger (1000 for 1024 projected features
    /// of 1000 samples in the tests). Default `1.0`.
    pub lambda: f64,
    /// `Some(n_proj)` regresses on `h = ReLU(P x)` with a fixed random
    /// `P: (n_proj, dim)`, `P_ij ~ N(0, 1/dim)`, instead of on `x` itself (e.g.
    /// `Some(2048)`): a non-linear classifier at the cost of an `n_proj × n_proj` system.
    /// Default `None`.
    pub projection: Option<usize>,
    /// Seed of the random projection (unused without one). Default 0.
    pub seed: u64,
}

impl Default for RidgeConfig {
    fn default() -> Self {
        RidgeConfig {
            lambda: 1.0,
            projection: None,
            seed: 0,
        }
    }
}

/// Ridge-regression classifier on frozen features.
///
/// `h: (n_batch, n_features)` is `x` itself or `ReLU(x Pᵀ)` (see
/// [`RidgeConfig::projection`]); `Y: (N, n_classes)` the one-hot labels (0/1 targets);
/// `H = [h | 1]` with a constant column for the bias. The learner keeps the Gram matrix
/// `HᵀH` and `HᵀY` (the per-class sums of `h`) and solves
///
/// `(HᵀH + λ I′) [W; bᵀ] = HᵀY`,
///
/// `I′` the identity with a zero for the bias, so that the penalty does not pull the
/// scores of every class towards 0 and the solution does not depend on an offset added
/// to all features. `weights: (n_features, n_classes)`, `bias: (n_classes)`,
/// `scores = h W + b`: least-squares estimates of the one-hot targets, the largest being
/// the predicted class; they are not probabilities.
///
/// The projection is drawn once from the seed and stored with the learner: `4 · n_proj ·
/// dim` bytes (32 MiB for `n_proj = 2048`, `dim = 4096`), besides the Gram matrix's
/// `8 · (n_proj + 1)²` (32 MiB). Projected features are computed in `f32`, a fixed
/// function of `x` that the order of the steps does not change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "RidgeState")]
pub struct Ridge {
    config: RidgeConfig,
    dim: usize,
    projection: Option<Array2<f32>>,
    moments: Moments,
    weights: Array2<f64>,
    bias: Array1<f64>,
}

/// [`Ridge`] as stored, checked by `TryFrom` before it becomes one (same fields, same
/// order).
#[derive(Deserialize)]
struct RidgeState {
    config: RidgeConfig,
    dim: usize,
    projection: Option<Array2<f32>>,
    moments: Moments,
    weights: Array2<f64>,
    bias: Array1<f64>,
}

impl TryFrom<RidgeState> for Ridge {
    type Error = Error;

    fn try_from(state: RidgeState) -> Result<Self> {
        let ridge = Ridge {
            config: state.config,
            dim: state.dim,
            projection: state.projection,
            moments: state.moments,
            weights: state.weights,
            bias: state.bias,
        };
        check_config(ridge.config)?;
        let (n_features, n_classes) = (ridge.n_features(), ridge.n_classes());
        let projection_ok = match (&ridge.projection, ridge.config.projection) {
            (None, None) => n_features == ridge.dim,
            (Some(p), Some(n_proj)) => n_proj == n_features && p.dim() == (n_features, ridge.dim),
            _ => false,
        };
        if ridge.dim == 0
            || !projection_ok
            || !ridge.moments.is_consistent(n_features, true)
            || ridge.weights.dim() != (n_features, n_classes)
            || ridge.bias.len() != n_classes
        {
            return Err(inconsistent("ridge"));
        }
        Ok(ridge)
    }
}

fn check_config(config: RidgeConfig) -> Result<()> {
    if !(config.lambda >= 0.0 && config.lambda.is_finite()) {
        return Err(Error::Config(format!(
            "ridge: lambda must be finite and non-negative, got {}",
            config.lambda
        )));
    }
    if config.projection == Some(0) {
        return Err(Error::Config(
            "ridge: the projection size must be positive".into(),
        ));
    }
    Ok(())
}

impl Ridge {
    /// A learner of `dim`-dimensional features that knows no class yet.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `dim` or the projection size is 0, or `λ` is negative or
    /// not finite.
    pub fn new(dim: usize, config: RidgeConfig) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Config(
                "ridge: the feature dimension must be positive".into(),
            ));
        }
        check_config(config)?;

        let projection = config.projection.map(|n_proj| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            let normal = Normal::new(0.0, 1.0 / (dim as f32).sqrt())
                .expect("a positive, finite standard deviation");
            Array2::random_using((n_proj, dim), normal, &mut rng)
        });
        let n_features = config.projection.unwrap_or(dim);
        Ok(Ridge {
            config,
            dim,
            projection,
            moments: Moments::new(n_features, true),
            weights: Array2::zeros((n_features, 0)),
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
    /// the system is not positive definite (`λ = 0` with fewer samples than features).
    pub fn update(&mut self, x: ArrayView2<'_, f32>, labels: &[usize]) -> Result<()> {
        let n_classes = check_step("ridge update", x, self.dim, labels, self.n_classes())?;
        let moments = self
            .moments
            .with_step(self.features(x).view(), labels, n_classes);
        let (weights, bias) = solve(&moments, self.config.lambda)?;

        self.moments = moments;
        self.weights = weights;
        self.bias = bias;
        debug!(
            n_batch = x.nrows(),
            n_classes,
            n_seen = self.moments.total(),
            "ridge updated"
        );
        Ok(())
    }

    /// `scores: (n_batch, n_classes)` of `x: (n_batch, dim)`: regression outputs for the
    /// one-hot targets, higher meaning more likely.
    ///
    /// # Errors
    ///
    /// [`Error::NoClasses`] before the first update, [`Error::Shape`] if `x` does not
    /// have `dim` columns, [`Error::NonFinite`] on NaN or infinite features.
    pub fn scores(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.n_classes() == 0 {
            return Err(Error::NoClasses);
        }
        check_features("ridge scores", x, self.dim)?;
        let scores = self.features(x).dot(&self.weights) + &self.bias;
        Ok(scores.mapv(|s| s as f32))
    }

    /// Number of classes learned.
    pub fn n_classes(&self) -> usize {
        self.moments.n_classes()
    }

    /// Dimension of the input features `x`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Dimension of the regression features `h`: the projection size, or `dim`.
    pub fn n_features(&self) -> usize {
        self.moments.dim()
    }

    /// The hyper-parameters.
    pub fn config(&self) -> RidgeConfig {
        self.config
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        self.moments.counts()
    }

    /// `projection: (n_proj, dim)`, the fixed random `P`, if any.
    pub fn projection(&self) -> Option<&Array2<f32>> {
        self.projection.as_ref()
    }

    /// `h: (n_batch, n_features)`, the regression features of `x: (n_batch, dim)`
    /// (`x` must have `dim` columns).
    fn features(&self, x: ArrayView2<'_, f32>) -> Array2<f64> {
        match &self.projection {
            None => x.mapv(f64::from),
            Some(p) => x.dot(&p.t()).mapv(|v| f64::from(v.max(0.0))),
        }
    }

    /// `weights: (n_features, n_classes)`, `W`.
    pub fn weights(&self) -> &Array2<f64> {
        &self.weights
    }

    /// `bias: (n_classes)`, `b`.
    pub fn bias(&self) -> &Array1<f64> {
        &self.bias
    }
}

/// Solves for `(weights, bias)` from the statistics.
///
/// The statistics are of `h − shift` (see `Moments`); with an unpenalised bias, shifting
/// `h` changes only the bias, by `shiftᵀ W`, which is added back at the end.
fn solve(moments: &Moments, lambda: f64) -> Result<(Array2<f64>, Array1<f64>)> {
    let scatter = moments.scatter().expect("ridge keeps a scatter matrix");
    let sums = moments.sums();
    let p = moments.dim();
    let n = moments.total() as f64;
    let total: Array1<f64> = sums.sum_axis(Axis(0));

    // `HᵀH + λ I′` of `H = [h − shift | 1]`: `[[scatter + λ I, total], [totalᵀ, N]]`,
    // lower triangle only (all that the scatter keeps and the solver reads).
    let mut system = Mat::zeros(p + 1, p + 1);
    with_faer(scatter.view(), |scatter| {
        system
            .submatrix_mut(0, 0, p, p)
            .copy_from_triangular_lower(scatter)
    });
    for j in 0..p {
        system[(j, j)] += lambda;
        system[(p, j)] = total[j];
    }
    system[(p, p)] = n;
    // `HᵀY`: column `c` is `[sums_c; n_c]`.
    let mut rhs = Array2::zeros((p + 1, moments.n_classes()));
    rhs.slice_mut(s![..p, ..]).assign(&sums.t());
    for (r, &count) in rhs.row_mut(p).iter_mut().zip(moments.counts()) {
        *r = count as f64;
    }

    let solution = solve_spd(system, rhs.view())
        .map_err(|e| not_positive_definite("ridge", e.pivot, "lambda", lambda))?;
    let weights = solution.slice(s![..p, ..]).to_owned();
    let bias = &solution.row(p) - &moments.shift().dot(&weights);
    Ok((weights, bias))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn one_feature_two_classes_by_hand() {
        // h = (0, 0, 2, 2) of classes (0, 0, 1, 1), λ = 1, H = [h | 1]:
        // HᵀH + λ I′ = [[8 + 1, 4], [4, 4]], HᵀY = [[0, 4], [2, 2]].
        // Class 1: 9w + 4b = 4, 4w + 4b = 2 → w = 0.4, b = 0.1; class 0: w = −0.4, b = 0.9.
        let x = array![[0.0_f32], [0.0], [2.0], [2.0]];
        let mut ridge = Ridge::new(1, RidgeConfig::default()).unwrap();
        ridge.update(x.view(), &[0, 0, 1, 1]).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(ridge.weights()[[0, 0]], -0.4) && close(ridge.weights()[[0, 1]], 0.4));
        assert!(close(ridge.bias()[0], 0.9) && close(ridge.bias()[1], 0.1));
        // The scores cross at h = 1, the midpoint.
        let s = ridge.scores(array![[1.0_f32]].view()).unwrap();
        assert!((s[[0, 0]] - s[[0, 1]]).abs() < 1e-6);
    }

    #[test]
    fn the_projection_is_fixed_by_the_seed() {
        let config = RidgeConfig {
            projection: Some(16),
            seed: 7,
            ..RidgeConfig::default()
        };
        let a = Ridge::new(8, config).unwrap();
        let b = Ridge::new(8, config).unwrap();
        let c = Ridge::new(8, RidgeConfig { seed: 8, ..config }).unwrap();
        assert_eq!(a.projection(), b.projection());
        assert_ne!(a.projection(), c.projection());
        assert_eq!(a.n_features(), 16);
        // Entries ~ N(0, 1/8): the mean square of 128 of them is near 1/8.
        let p = a.projection().unwrap();
        let mean_square = p.mapv(|v| v * v).mean().unwrap();
        assert!((0.08..0.17).contains(&mean_square), "{mean_square}");
    }

    #[test]
    fn without_penalty_too_few_samples_is_a_config_error() {
        let mut ridge = Ridge::new(
            3,
            RidgeConfig {
                lambda: 0.0,
                ..RidgeConfig::default()
            },
        )
        .unwrap();
        let err = ridge.update(array![[1.0_f32, 2.0, 3.0]].view(), &[0]);
        assert!(matches!(err, Err(Error::Config(msg)) if msg.contains("raise lambda")));
        assert_eq!(ridge.n_classes(), 0);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let bad = [
            RidgeConfig {
                lambda: -1.0,
                ..RidgeConfig::default()
            },
            RidgeConfig {
                lambda: f64::INFINITY,
                ..RidgeConfig::default()
            },
            RidgeConfig {
                projection: Some(0),
                ..RidgeConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(Ridge::new(4, config), Err(Error::Config(_))),
                "{config:?}"
            );
        }
        assert!(matches!(
            Ridge::new(0, RidgeConfig::default()),
            Err(Error::Config(_))
        ));
    }
}

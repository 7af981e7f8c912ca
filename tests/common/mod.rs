//! Seeded synthetic clustered features shared by the integration tests.
#![allow(dead_code)]

use continual::{Classifier, Learner};
use ndarray::{Array2, s};
use ndarray_rand::rand_distr::{Distribution, Normal};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

/// Gaussian clusters: class `c` has centre `μ_c ~ N(0, 1)^d` and samples
/// `μ_c + σ·N(0, 1)^d`, then a ReLU (frozen CNN features are non-negative).
pub struct Clusters {
    pub centres: Array2<f32>,
    pub sigma: f32,
}

impl Clusters {
    pub fn new(d: usize, n_classes: usize, sigma: f32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
        let centres = Array2::from_shape_simple_fn((n_classes, d), || normal.sample(&mut rng));
        Clusters { centres, sigma }
    }

    /// `per_class` samples of each class in `classes`: `(x, class indices)`.
    pub fn sample(
        &self,
        classes: &[usize],
        per_class: usize,
        seed: u64,
    ) -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, self.sigma).expect("valid normal");
        let d = self.centres.ncols();
        let mut x = Array2::zeros((classes.len() * per_class, d));
        let mut y = Vec::with_capacity(x.nrows());
        for (k, &c) in classes.iter().enumerate() {
            for i in 0..per_class {
                let mut row = x.row_mut(k * per_class + i);
                row.assign(&self.centres.row(c));
                row.mapv_inplace(|v| (v + normal.sample(&mut rng)).max(0.0));
                y.push(c);
            }
        }
        (x, y)
    }
}

pub fn names(y: &[usize]) -> Vec<String> {
    y.iter().map(|c| format!("class{c:02}")).collect()
}

/// Accuracy of `learner` on `(x, y)` with `classifier`.
pub fn accuracy(learner: &Learner, x: &Array2<f32>, y: &[usize], classifier: Classifier) -> f64 {
    let preds = learner
        .predict(x.view(), classifier, 1)
        .expect("prediction works");
    let hits = preds
        .iter()
        .zip(y)
        .filter(|(p, c)| p.class == format!("class{c:02}"))
        .count();
    hits as f64 / y.len() as f64
}

/// Rows of `x` whose class is in `classes`.
pub fn subset(x: &Array2<f32>, y: &[usize], classes: &[usize]) -> (Array2<f32>, Vec<usize>) {
    let rows: Vec<usize> = (0..y.len()).filter(|&i| classes.contains(&y[i])).collect();
    let xs = x.select(ndarray::Axis(0), &rows);
    (xs, rows.iter().map(|&i| y[i]).collect())
}

/// Runs the 10-classes-in-5-steps protocol; returns the final (head, NME) accuracy
/// on the test data of all classes and the seconds spent learning.
pub fn protocol(
    clusters: &Clusters,
    config: continual::LearnerConfig,
    steps: &[Vec<usize>],
    train_per_class: usize,
    test_per_class: usize,
) -> (f64, f64, f64) {
    let d = clusters.centres.ncols();
    let mut learner = Learner::new(d, config).expect("valid config");
    let mut seconds = 0.0;
    for (k, classes) in steps.iter().enumerate() {
        let (x, y) = clusters.sample(classes, train_per_class, 1000 + k as u64);
        let report = learner.learn(x.view(), &names(&y), None).expect("learns");
        seconds += report.seconds;
    }
    let all: Vec<usize> = steps.iter().flatten().copied().collect();
    let (xt, yt) = clusters.sample(&all, test_per_class, 99);
    let _ = s![..];
    (
        accuracy(&learner, &xt, &yt, Classifier::Head),
        accuracy(&learner, &xt, &yt, Classifier::Nme),
        seconds,
    )
}

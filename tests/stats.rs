//! The statistics-based learners through the public API: order independence,
//! equivalence with a batch computation on all the data, accuracy, persistence, errors.

use continual::Error;
use continual::stats::{Ncm, Ridge, RidgeConfig, Slda, SldaConfig};
use faer::prelude::SolveLstsq;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_rand::RandomExt;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand::seq::SliceRandom;
use ndarray_rand::rand_distr::{Normal, Uniform};
use rand_chacha::ChaCha8Rng;

/// The calls every learner here shares, so that one test body covers them all.
trait Learner: Clone {
    fn update(&mut self, x: ArrayView2<'_, f32>, labels: &[usize]) -> continual::Result<()>;
    fn scores(&self, x: ArrayView2<'_, f32>) -> continual::Result<Array2<f32>>;
    fn n_classes(&self) -> usize;
    /// The fitted parameters, one row per class (learner class order).
    fn class_params(&self) -> Array2<f64>;
}

macro_rules! impl_learner {
    ($($t:ty => |$learner:ident| $params:expr),* $(,)?) => {$(
        impl Learner for $t {
            fn update(&mut self, x: ArrayView2<'_, f32>, labels: &[usize]) -> continual::Result<()> {
                <$t>::update(self, x, labels)
            }
            fn scores(&self, x: ArrayView2<'_, f32>) -> continual::Result<Array2<f32>> {
                <$t>::scores(self, x)
            }
            fn n_classes(&self) -> usize {
                <$t>::n_classes(self)
            }
            fn class_params(&self) -> Array2<f64> {
                let $learner = self;
                $params
            }
        }
    )*};
}
impl_learner!(
    Slda => |slda| linear_params(slda.weights(), slda.bias()),
    Ridge => |ridge| linear_params(ridge.weights(), ridge.bias()),
    Ncm => |ncm| ncm.means().clone(),
);

/// Rows `[w_c, b_c]` of a linear classifier.
fn linear_params(weights: &Array2<f64>, bias: &Array1<f64>) -> Array2<f64> {
    let mut params = weights.t().to_owned();
    params.push_column(bias.view()).unwrap();
    params
}

/// Labelled features; `labels` are the data set's own class ids.
struct Data {
    x: Array2<f32>,
    labels: Vec<usize>,
}

/// Gaussian blobs: `per_class` samples of each of `n_classes` classes in `dim`
/// dimensions, class centres `~ N(0, spread²)`, a common offset of 3 on every feature
/// (as ReLU features have) and noise with per-feature standard deviations in
/// `[0.5, 2]`, the same for all classes (the model linear discriminant analysis assumes).
fn blobs(seed: u64, n_classes: usize, dim: usize, per_class: usize, spread: f32) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::random_using(
        (n_classes, dim),
        Normal::new(3.0, spread).unwrap(),
        &mut rng,
    );
    let scales = Array1::random_using(dim, Uniform::new(0.5, 2.0).unwrap(), &mut rng);
    let noise = Array2::random_using(
        (n_classes * per_class, dim),
        Normal::new(0.0_f32, 1.0).unwrap(),
        &mut rng,
    );
    let labels: Vec<usize> = (0..n_classes * per_class).map(|i| i / per_class).collect();
    let mut x = noise * &scales;
    for (mut row, &label) in x.rows_mut().into_iter().zip(&labels) {
        row += &centres.row(label);
    }
    Data { x, labels }
}

/// Draws `blobs` once and splits each class into `n_train` training and `n_test` test
/// samples. The centres spread 0.3 per coordinate: classes overlap (see the accuracies
/// in `accuracy_on_gaussian_blobs`), so equal predictions are not a foregone conclusion.
fn train_test(
    seed: u64,
    n_classes: usize,
    dim: usize,
    n_train: usize,
    n_test: usize,
) -> (Data, Data) {
    let all = blobs(seed, n_classes, dim, n_train + n_test, 0.3);
    let split = |test: bool| {
        let rows: Vec<usize> = (0..all.labels.len())
            .filter(|i| (i % (n_train + n_test) >= n_train) == test)
            .collect();
        Data {
            x: all.x.select(Axis(0), &rows),
            labels: rows.iter().map(|&i| all.labels[i]).collect(),
        }
    };
    (split(false), split(true))
}

/// Feeds `learner` one update per entry of `updates` (rows of `data`), numbering the
/// classes in the order they first appear; returns the data set's class id of each
/// learner class index.
fn present<L: Learner>(learner: &mut L, data: &Data, updates: &[Vec<usize>]) -> Vec<usize> {
    let mut class_of_index: Vec<usize> = Vec::new();
    for rows in updates {
        let labels: Vec<usize> = rows
            .iter()
            .map(|&r| {
                let class = data.labels[r];
                match class_of_index.iter().position(|&c| c == class) {
                    Some(index) => index,
                    None => {
                        class_of_index.push(class);
                        class_of_index.len() - 1
                    }
                }
            })
            .collect();
        learner
            .update(data.x.select(Axis(0), rows).view(), &labels)
            .unwrap();
    }
    assert_eq!(learner.n_classes(), class_of_index.len());
    class_of_index
}

/// Schedule A: classes in their natural order, steps of 4, 3 and 3 classes, each step
/// one update with all the samples of its classes.
fn schedule_a(data: &Data) -> Vec<Vec<usize>> {
    [0..4, 4..7, 7..10]
        .into_iter()
        .map(|classes| {
            (0..data.labels.len())
                .filter(|&r| classes.contains(&data.labels[r]))
                .collect()
        })
        .collect()
}

/// Schedule B: a shuffled class order, two new classes per step; 60 % of a class's
/// samples arrive with it and the rest one step later, with the next classes (the
/// last update brings no new class); rows shuffled within each update.
fn schedule_b(data: &Data, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..10).collect();
    order.shuffle(&mut rng);
    let rows_of = |class: usize| -> Vec<usize> {
        (0..data.labels.len())
            .filter(|&r| data.labels[r] == class)
            .collect()
    };
    let mut updates = vec![Vec::new(); 6];
    for (k, pair) in order.chunks(2).enumerate() {
        for &class in pair {
            let rows = rows_of(class);
            let first = rows.len() * 3 / 5;
            updates[k].extend_from_slice(&rows[..first]);
            updates[k + 1].extend_from_slice(&rows[first..]);
        }
    }
    for rows in &mut updates {
        rows.shuffle(&mut rng);
    }
    updates
}

/// `scores` with its columns put in the data set's class order.
fn by_class(scores: &Array2<f32>, class_of_index: &[usize]) -> Array2<f32> {
    let mut out = Array2::zeros(scores.dim());
    for (index, &class) in class_of_index.iter().enumerate() {
        out.column_mut(class).assign(&scores.column(index));
    }
    out
}

fn argmax(scores: &Array2<f32>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|row| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap()
        })
        .collect()
}

fn accuracy(scores: &Array2<f32>, labels: &[usize]) -> f64 {
    let hits = argmax(scores)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / labels.len() as f64
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    (a - b).iter().fold(0.0, |m, d| m.max(d.abs()))
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// `max |got − expected| / max |expected|`, printed under `name` for the record.
fn relative_diff(name: &str, got: &Array2<f64>, expected: &Array2<f64>) -> f64 {
    let diff = max_abs_diff(got, expected) / max_abs(expected);
    println!("{name}: relative difference {diff:e}");
    diff
}

fn as_row(v: &Array1<f64>) -> Array2<f64> {
    v.clone().insert_axis(Axis(0))
}

/// Learns the same data under schedules A and B, checks that they predict the same
/// classes, and returns the largest differences of the scores and of the parameters,
/// each relative to the largest value.
fn order_difference<L: Learner>(fresh: L) -> (f64, f64) {
    let (train, test) = train_test(11, 10, 32, 60, 30);
    let mut a = fresh.clone();
    let mut b = fresh;
    let classes_a = present(&mut a, &train, &schedule_a(&train));
    let classes_b = present(&mut b, &train, &schedule_b(&train, 5));
    assert_ne!(
        classes_a, classes_b,
        "the two schedules use different class orders"
    );

    let scores_a = by_class(&a.scores(test.x.view()).unwrap(), &classes_a);
    let scores_b = by_class(&b.scores(test.x.view()).unwrap(), &classes_b);
    assert_eq!(argmax(&scores_a), argmax(&scores_b));
    let (scores_a, scores_b) = (scores_a.mapv(f64::from), scores_b.mapv(f64::from));
    let score_diff = max_abs_diff(&scores_a, &scores_b) / max_abs(&scores_a).max(1.0);

    // Rows of B's parameters in A's class order.
    let order: Vec<usize> = classes_a
        .iter()
        .map(|c| classes_b.iter().position(|d| d == c).unwrap())
        .collect();
    let params_b = b.class_params().select(Axis(0), &order);
    let params_a = a.class_params();
    let param_diff = max_abs_diff(&params_a, &params_b) / max_abs(&params_a);
    println!("relative differences: scores {score_diff:e}, parameters {param_diff:e}");
    (score_diff, param_diff)
}

// Order independence. The accumulators are sums in f64, so the two schedules differ
// only by rounding, about 1e-15 relative in the parameters (observed below); the
// scores are then rounded to f32 (6e-8 relative). Tolerances, relative to the largest
// value: 1e-5 on the f32 scores, 1e-9 on the f64 parameters.
const SCORE_TOLERANCE: f64 = 1e-5;
const PARAM_TOLERANCE: f64 = 1e-9;

#[test]
fn slda_does_not_depend_on_class_order_or_step_sizes() {
    let (scores, params) = order_difference(Slda::new(32, SldaConfig::default()).unwrap());
    // Observed: scores identical in f32, parameters 1.7e-15.
    assert!(
        scores <= SCORE_TOLERANCE && params <= PARAM_TOLERANCE,
        "{scores:e} {params:e}"
    );
}

#[test]
fn ridge_does_not_depend_on_class_order_or_step_sizes() {
    let (scores, params) = order_difference(Ridge::new(32, RidgeConfig::default()).unwrap());
    // Observed: scores identical in f32, parameters 2.3e-15.
    assert!(
        scores <= SCORE_TOLERANCE && params <= PARAM_TOLERANCE,
        "{scores:e} {params:e}"
    );

    let projected = RidgeConfig {
        lambda: 100.0,
        projection: Some(256),
        seed: 3,
    };
    let (scores, params) = order_difference(Ridge::new(32, projected).unwrap());
    // Observed: scores identical in f32, parameters 1.1e-15.
    assert!(
        scores <= SCORE_TOLERANCE && params <= PARAM_TOLERANCE,
        "{scores:e} {params:e}"
    );
}

#[test]
fn ncm_does_not_depend_on_class_order_or_step_sizes() {
    let (scores, params) = order_difference(Ncm::new(32).unwrap());
    // Observed: scores identical in f32, parameters 6.1e-16.
    assert!(
        scores <= SCORE_TOLERANCE && params <= PARAM_TOLERANCE,
        "{scores:e} {params:e}"
    );
}

/// Largest parameter difference, relative to the largest parameter, between learning
/// all of `data` at once and learning it shuffled by `seed` and cut at `cuts` into
/// updates of any sizes.
fn split_difference<L: Learner>(fresh: L, data: &Data, seed: u64, cuts: &[usize]) -> f64 {
    let mut whole = fresh.clone();
    let classes_whole = present(&mut whole, data, &[(0..data.labels.len()).collect()]);

    let mut rows: Vec<usize> = (0..data.labels.len()).collect();
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&c| c % rows.len())
        .filter(|&c| c > 0)
        .collect();
    cuts.extend([0, rows.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    let updates: Vec<Vec<usize>> = cuts.windows(2).map(|w| rows[w[0]..w[1]].to_vec()).collect();
    let mut split = fresh;
    let classes_split = present(&mut split, data, &updates);

    let order: Vec<usize> = classes_whole
        .iter()
        .map(|c| classes_split.iter().position(|d| d == c).unwrap())
        .collect();
    let params_split = split.class_params().select(Axis(0), &order);
    max_abs_diff(&whole.class_params(), &params_split) / max_abs(&whole.class_params())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    // Any shuffling of the samples and any step sizes give the parameters of one batch
    // update, within the order-independence tolerance.
    #[test]
    fn any_split_into_steps_gives_the_batch_parameters(
        seed in 0_u64..1000,
        cuts in proptest::collection::vec(0_usize..1000, 0..8),
    ) {
        let data = blobs(81, 5, 8, 12, 0.3);
        let slda = split_difference(Slda::new(8, SldaConfig::default()).unwrap(), &data, seed, &cuts);
        let ridge = split_difference(Ridge::new(8, RidgeConfig::default()).unwrap(), &data, seed, &cuts);
        let ncm = split_difference(Ncm::new(8).unwrap(), &data, seed, &cuts);
        proptest::prop_assert!(slda <= PARAM_TOLERANCE, "slda {:e}", slda);
        proptest::prop_assert!(ridge <= PARAM_TOLERANCE, "ridge {:e}", ridge);
        proptest::prop_assert!(ncm <= PARAM_TOLERANCE, "ncm {:e}", ncm);
    }
}

/// Learns the training data under schedule B (shuffled classes, samples of a class
/// spread over two steps) and returns the learner and its class order.
fn learned<L: Learner>(mut learner: L, train: &Data) -> (L, Vec<usize>) {
    let classes = present(&mut learner, train, &schedule_b(train, 9));
    (learner, classes)
}

/// Rows of a `(n_classes, _)` matrix put in the learner's class order.
fn in_learner_order(a: &Array2<f64>, class_of_index: &[usize]) -> Array2<f64> {
    a.select(Axis(0), class_of_index)
}

#[test]
fn slda_equals_a_batch_computation_on_all_the_data() {
    let (train, _) = train_test(21, 10, 24, 40, 0);
    let dim = 24;
    let config = SldaConfig { shrinkage: 0.05 };
    let (slda, classes) = learned(Slda::new(dim, config).unwrap(), &train);

    // Two-pass reference, plain loops in data-set class order: means first, then the
    // covariance of the deviations from them.
    let x = train.x.mapv(f64::from);
    let n = x.nrows();
    let mut means = Array2::<f64>::zeros((10, dim));
    let mut counts = [0.0; 10];
    for i in 0..n {
        counts[train.labels[i]] += 1.0;
        for j in 0..dim {
            means[[train.labels[i], j]] += x[[i, j]];
        }
    }
    for c in 0..10 {
        for j in 0..dim {
            means[[c, j]] /= counts[c];
        }
    }
    let mut cov = Array2::<f64>::zeros((dim, dim));
    for i in 0..n {
        for j in 0..dim {
            for k in 0..dim {
                let dj = x[[i, j]] - means[[train.labels[i], j]];
                let dk = x[[i, k]] - means[[train.labels[i], k]];
                cov[[j, k]] += dj * dk / n as f64;
            }
        }
    }
    let means = in_learner_order(&means, &classes);
    // Observed: 2e-16 (means), 9e-16 (covariance).
    assert!(relative_diff("means", &slda.means(), &means) < 1e-12);
    assert!(relative_diff("covariance", &slda.covariance(), &cov) < 1e-12);

    // Weights by an LU factorisation with full pivoting of the shrunk covariance, a
    // different solver from the learner's Cholesky; `b_c = −½ μ_cᵀ w_c`.
    let eps = config.shrinkage;
    let shrunk = faer::Mat::from_fn(dim, dim, |j, k| {
        (1.0 - eps) * cov[[j, k]] + if j == k { eps } else { 0.0 }
    });
    let rhs = faer::Mat::from_fn(dim, 10, |j, c| means[[c, j]]);
    let w = faer::prelude::Solve::solve(&shrunk.full_piv_lu(), &rhs);
    let w = Array2::from_shape_fn((dim, 10), |(j, c)| w[(j, c)]);
    let b = Array1::from_shape_fn(10, |c| -0.5 * means.row(c).dot(&w.column(c)));
    // Observed: 8e-16 (weights), 7e-16 (bias).
    assert!(relative_diff("weights", slda.weights(), &w) < 1e-10);
    assert!(relative_diff("bias", &as_row(slda.bias()), &as_row(&b)) < 1e-10);
}

/// Ridge reference: least squares on the stacked system `[[h, 1], [√λ I, 0]] · [W; b]
/// ≈ [[Y], [0]]` by a QR factorisation (no normal equations), classes in `classes`
/// order.
fn ridge_by_qr(
    h: &Array2<f64>,
    labels: &[usize],
    classes: &[usize],
    lambda: f64,
) -> (Array2<f64>, Array1<f64>) {
    let (n, p) = h.dim();
    let k = classes.len();
    let a = faer::Mat::from_fn(n + p, p + 1, |i, j| match (i < n, j < p) {
        (true, true) => h[[i, j]],
        (true, false) => 1.0,
        (false, true) => {
            if i - n == j {
                lambda.sqrt()
            } else {
                0.0
            }
        }
        (false, false) => 0.0,
    });
    let y = faer::Mat::from_fn(n + p, k, |i, c| {
        if i < n && labels[i] == classes[c] {
            1.0
        } else {
            0.0
        }
    });
    let solution = a.qr().solve_lstsq(&y);
    let w = Array2::from_shape_fn((p, k), |(j, c)| solution[(j, c)]);
    let b = Array1::from_shape_fn(k, |c| solution[(p, c)]);
    (w, b)
}

#[test]
fn ridge_equals_a_batch_computation_on_all_the_data() {
    let (train, _) = train_test(31, 10, 24, 40, 0);
    let lambda = 3.0;
    let (ridge, classes) = learned(
        Ridge::new(
            24,
            RidgeConfig {
                lambda,
                ..RidgeConfig::default()
            },
        )
        .unwrap(),
        &train,
    );
    let (w, b) = ridge_by_qr(&train.x.mapv(f64::from), &train.labels, &classes, lambda);
    // Observed: 2e-15 (weights), 4e-15 (bias).
    assert!(relative_diff("weights", ridge.weights(), &w) < 1e-10);
    assert!(relative_diff("bias", &as_row(ridge.bias()), &as_row(&b)) < 1e-10);
}

#[test]
fn projected_ridge_equals_a_batch_computation_on_all_the_data() {
    let (train, _) = train_test(41, 10, 24, 40, 0);
    let config = RidgeConfig {
        lambda: 3.0,
        projection: Some(64),
        seed: 4,
    };
    let (ridge, classes) = learned(Ridge::new(24, config).unwrap(), &train);

    // `h = ReLU(P x)` in f64 by plain loops from the learner's stored projection (the
    // learner computes it in f32, which is why this tolerance is looser).
    let p = ridge.projection().unwrap().mapv(f64::from);
    let x = train.x.mapv(f64::from);
    let h = Array2::from_shape_fn((x.nrows(), 64), |(i, j)| {
        (0..24).map(|k| p[[j, k]] * x[[i, k]]).sum::<f64>().max(0.0)
    });
    let (w, b) = ridge_by_qr(&h, &train.labels, &classes, config.lambda);
    // Observed: 1.3e-6 (weights), 1.5e-7 (bias).
    assert!(relative_diff("weights", ridge.weights(), &w) < 1e-5);
    assert!(relative_diff("bias", &as_row(ridge.bias()), &as_row(&b)) < 1e-5);
}

#[test]
fn ncm_equals_a_batch_computation_on_all_the_data() {
    let (train, _) = train_test(51, 10, 24, 40, 0);
    let (ncm, classes) = learned(Ncm::new(24).unwrap(), &train);

    // Normalise every row, average per class, renormalise.
    let mut means = Array2::<f64>::zeros((10, 24));
    for (row, &label) in train.x.rows().into_iter().zip(&train.labels) {
        let norm = row
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        for j in 0..24 {
            means[[label, j]] += f64::from(row[j]) / norm / 40.0;
        }
    }
    for mut mean in means.rows_mut() {
        let norm = mean.dot(&mean).sqrt();
        mean /= norm;
    }
    let means = in_learner_order(&means, &classes);
    // Observed: 5e-16.
    assert!(relative_diff("means", ncm.means(), &means) < 1e-14);
}

#[test]
fn accuracy_on_gaussian_blobs() {
    // d = 64, 10 classes, 100 training and 100 test samples per class (see `blobs`).
    // Linear discriminant analysis is the Bayes classifier for this data (apart from
    // estimation error); the random projection can only approach it, and needs a much
    // larger λ than the raw features, as there are more projected features (1024) than
    // samples (1000).
    let (train, test) = train_test(61, 10, 64, 100, 100);
    let mut slda = Slda::new(64, SldaConfig::default()).unwrap();
    let mut ridge = Ridge::new(64, RidgeConfig::default()).unwrap();
    let mut projected = Ridge::new(
        64,
        RidgeConfig {
            lambda: 1000.0,
            projection: Some(1024),
            seed: 0,
        },
    )
    .unwrap();
    let mut ncm = Ncm::new(64).unwrap();
    let updates = schedule_a(&train);
    present(&mut slda, &train, &updates);
    present(&mut ridge, &train, &updates);
    present(&mut projected, &train, &updates);
    present(&mut ncm, &train, &updates);

    let acc = |scores: continual::Result<Array2<f32>>| accuracy(&scores.unwrap(), &test.labels);
    let (a_slda, a_ridge, a_proj, a_ncm) = (
        acc(slda.scores(test.x.view())),
        acc(ridge.scores(test.x.view())),
        acc(projected.scores(test.x.view())),
        acc(ncm.scores(test.x.view())),
    );
    println!("accuracy: slda {a_slda}, ridge {a_ridge}, projected ridge {a_proj}, ncm {a_ncm}");
    // Measured: slda 0.752, ridge 0.749, projected ridge 0.727, ncm 0.565 (chance is 0.1);
    // NCM ignores the unequal noise scales of the features. Thresholds 0.05 below.
    assert!(a_slda > 0.70, "slda {a_slda}");
    assert!(a_ridge > 0.70, "ridge {a_ridge}");
    assert!(a_proj > 0.68, "projected ridge {a_proj}");
    assert!(a_ncm > 0.51, "ncm {a_ncm}");
}

fn round_trip<L>(learner: &L) -> L
where
    L: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = bincode::serde::encode_to_vec(learner, bincode::config::standard()).unwrap();
    let (back, read) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(read, bytes.len());
    back
}

#[test]
fn a_saved_and_loaded_learner_scores_identically_and_keeps_learning() {
    let (train, test) = train_test(71, 10, 16, 30, 10);
    let updates = schedule_a(&train);
    let (first, rest) = updates.split_at(1);

    fn check<L: Learner + serde::Serialize + serde::de::DeserializeOwned>(
        mut learner: L,
        train: &Data,
        test: &Data,
        first: &[Vec<usize>],
        rest: &[Vec<usize>],
    ) {
        present(&mut learner, train, first);
        let mut loaded = round_trip(&learner);
        assert_eq!(
            loaded.scores(test.x.view()).unwrap(),
            learner.scores(test.x.view()).unwrap()
        );
        // Learning goes on from the loaded statistics exactly as from the originals.
        let labels_of =
            |rows: &Vec<usize>| rows.iter().map(|&r| train.labels[r]).collect::<Vec<_>>();
        for rows in rest {
            let x = train.x.select(Axis(0), rows);
            learner.update(x.view(), &labels_of(rows)).unwrap();
            loaded.update(x.view(), &labels_of(rows)).unwrap();
        }
        assert_eq!(
            loaded.scores(test.x.view()).unwrap(),
            learner.scores(test.x.view()).unwrap()
        );
    }
    check(
        Slda::new(16, SldaConfig::default()).unwrap(),
        &train,
        &test,
        first,
        rest,
    );
    check(
        Ridge::new(16, RidgeConfig::default()).unwrap(),
        &train,
        &test,
        first,
        rest,
    );
    let projected = RidgeConfig {
        projection: Some(32),
        ..RidgeConfig::default()
    };
    check(
        Ridge::new(16, projected).unwrap(),
        &train,
        &test,
        first,
        rest,
    );
    check(Ncm::new(16).unwrap(), &train, &test, first, rest);
}

#[test]
fn bad_input_is_an_error_and_leaves_the_learner_unchanged() {
    fn check<L: Learner>(mut learner: L) {
        let x = Array2::<f32>::ones((3, 4));
        assert!(matches!(learner.scores(x.view()), Err(Error::NoClasses)));
        learner.update(x.view(), &[0, 0, 1]).unwrap();
        let before = learner.scores(x.view()).unwrap();

        let wrong_dim = Array2::<f32>::ones((3, 5));
        let mut nan = x.clone();
        nan[[2, 1]] = f32::NAN;
        let empty = Array2::<f32>::zeros((0, 4));
        match learner.update(wrong_dim.view(), &[0, 0, 0]) {
            Err(Error::Shape { expected, got, .. }) => {
                assert_eq!((expected, got), (vec![usize::MAX, 4], vec![3, 5]))
            }
            other => panic!("expected Shape, got {other:?}"),
        }
        assert!(matches!(
            learner.scores(wrong_dim.view()),
            Err(Error::Shape { .. })
        ));
        match learner.update(nan.view(), &[0, 0, 0]) {
            Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (2, 1)),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert!(matches!(
            learner.scores(nan.view()),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            learner.update(empty.view(), &[]),
            Err(Error::EmptyStep(_))
        ));
        assert!(matches!(
            learner.update(x.view(), &[0, 1]),
            Err(Error::InvalidLabel(_))
        ));
        // Class 3 would leave class 2 without samples.
        assert!(matches!(
            learner.update(x.view(), &[0, 3, 3]),
            Err(Error::InvalidLabel(_))
        ));

        assert_eq!(learner.n_classes(), 2);
        assert_eq!(learner.scores(x.view()).unwrap(), before);
        // An empty batch to score is fine.
        assert_eq!(learner.scores(empty.view()).unwrap().dim(), (0, 2));
    }
    check(Slda::new(4, SldaConfig::default()).unwrap());
    check(Ridge::new(4, RidgeConfig::default()).unwrap());
    check(Ncm::new(4).unwrap());
}

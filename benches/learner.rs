//! The learner's other costs: one whole incremental step, prediction, herding,
//! and saving and loading a state file.
//!
//! Features are Gaussian clusters (one random centre per class), so the work is
//! that of real features of the same size; what is learned does not matter here.
//!
//! `MATMUL_NUM_THREADS=1 cargo bench --bench learner`

use std::hint::black_box;

use continual::memory::herding;
use continual::{Classifier, Learner, LearnerConfig};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use ndarray::{Array2, Axis};
use ndarray_rand::RandomExt;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand_distr::Normal;
use rand_chacha::ChaCha8Rng;

/// `LearnerConfig::default().hidden`.
const DEFAULT_HIDDEN: [usize; 1] = [512];

/// `per_class` samples of each class `first..first + classes`: a random centre
/// per class (seeded by the class) plus unit noise.
fn clusters(
    dim: usize,
    first: usize,
    classes: usize,
    per_class: usize,
) -> (Array2<f32>, Vec<String>) {
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    let mut x = Array2::<f32>::zeros((0, dim));
    let mut labels = Vec::new();
    for c in first..first + classes {
        let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
        let centre = Array2::random_using((1, dim), normal, &mut rng) * 2.0;
        let block = Array2::random_using((per_class, dim), normal, &mut rng) + &centre;
        x.append(Axis(0), block.view()).expect("same width");
        labels.extend(std::iter::repeat_n(format!("c{c}"), per_class));
    }
    (x, labels)
}

/// A learner of the default configuration (memory 2000) with the given hidden
/// layers that knows `classes` classes, trained for `epochs` epochs on
/// `per_class` samples each.
fn trained(
    dim: usize,
    hidden: &[usize],
    classes: usize,
    per_class: usize,
    epochs: usize,
) -> Learner {
    let config = LearnerConfig {
        epochs,
        hidden: hidden.to_vec(),
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(dim, config).expect("valid config");
    let (x, labels) = clusters(dim, 0, classes, per_class);
    learner.learn(x.view(), &labels, None).expect("learns");
    learner
}

/// One step of 10 new classes × 500 samples onto a learner that knows 50 classes
/// with a full memory of 2000 exemplars: 7,000 training rows × 20 epochs, then
/// herding and the class means. d = 256, the bundled extractor's width.
fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("learner_step");
    group.sample_size(10);
    let dim = 256;
    let before = trained(dim, &DEFAULT_HIDDEN, 50, 100, 20);
    assert_eq!(before.exemplar_counts().iter().sum::<usize>(), 2000);
    let (x, labels) = clusters(dim, 50, 10, 500);
    group.throughput(Throughput::Elements(x.nrows() as u64));
    group.bench_function("icarl_d256_50+10_classes_memory2000", |b| {
        b.iter_batched(
            || before.clone(),
            |mut learner| {
                learner
                    .learn(black_box(x.view()), &labels, None)
                    .expect("learns");
                learner
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Prediction (scores, best class) per sample at d = 256, one sample at a time
/// and 1,000 at once, with the NME and head classifiers, for the default head
/// (one hidden layer of 512) and a linear one.
fn predict(c: &mut Criterion) {
    let mut group = c.benchmark_group("predict");
    let dim = 256;
    for (head, hidden) in [("hidden512", &DEFAULT_HIDDEN[..]), ("linear", &[][..])] {
        for classes in [100, 1000] {
            predict_one_learner(&mut group, &trained(dim, hidden, classes, 4, 1), head);
        }
    }
    group.finish();
}

/// The prediction benchmarks of one learner; `head` names its head in the ids.
fn predict_one_learner(group: &mut BenchmarkGroup<WallTime>, learner: &Learner, head: &str) {
    let classes = learner.classes().len();
    let (batch, _) = clusters(learner.dim(), 0, classes, 1000 / classes);
    let one = batch.slice(ndarray::s![..1, ..]);
    for classifier in [Classifier::Nme, Classifier::Head] {
        let name = format!("{}_{head}_{classes}_classes", classifier.name());
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new(name.clone(), "batch1"), |b| {
            b.iter(|| {
                learner
                    .predict(black_box(one), classifier, 1)
                    .expect("predicts")
            })
        });
        group.throughput(Throughput::Elements(batch.nrows() as u64));
        group.bench_function(
            BenchmarkId::new(name, format!("batch{}", batch.nrows())),
            |b| {
                b.iter(|| {
                    learner
                        .predict(black_box(batch.view()), classifier, 1)
                        .expect("predicts")
                })
            },
        );
    }
}

/// Herding `m` exemplars out of 6,000 candidates (one Fashion-MNIST class), in
/// the head's representation (d = 512) and the bundled features (d = 256).
fn herd(c: &mut Criterion) {
    let mut group = c.benchmark_group("herding_6000");
    group.sample_size(10);
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for dim in [256, 512] {
        let phi = Array2::random_using((6000, dim), normal, &mut rng).mapv(f32::abs);
        for m in [200, 2000] {
            group.throughput(Throughput::Elements(m as u64));
            group.bench_function(BenchmarkId::new(format!("d{dim}"), format!("m{m}")), |b| {
                b.iter(|| herding(black_box(phi.view()), m))
            });
        }
    }
    group.finish();
}

/// Saving (encode, checksum, write, fsync, rename) and loading (read, verify,
/// decode) the state of a learner with 2,000 exemplars at d = 4096 (VGG16's
/// fc7) and a hidden layer of 512: about 41 MB.
fn save_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_memory2000_d4096");
    group.sample_size(20);
    let learner = trained(4096, &DEFAULT_HIDDEN, 10, 200, 1);
    assert_eq!(learner.exemplar_counts().iter().sum::<usize>(), 2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.bin");
    learner.save(&path).expect("saves");
    let bytes = std::fs::metadata(&path).expect("saved").len();
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("save", |b| {
        b.iter(|| learner.save(black_box(&path)).expect("saves"))
    });
    group.bench_function("load", |b| {
        b.iter(|| Learner::load(black_box(&path)).expect("loads"))
    });
    let in_memory = std::fs::read(&path).expect("reads");
    group.bench_function("decode_from_memory", |b| {
        b.iter(|| Learner::decode(&path, black_box(&in_memory)).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, step, predict, herd, save_load);
criterion_main!(benches);

//! Head training, one minibatch at a time (forward, loss, backward, SGD update:
//! `continual::head::train_step`, the learner's inner loop), the matrix
//! products it is made of, and the matrix-vector products of predicting one sample.
//!
//! Each minibatch is one incremental step's batch: the step's classes are the
//! upper half of the outputs, the lower half are distilled against stored
//! previous logits (the iCaRL BCE loss), and every sample carries a
//! class-balancing weight, as with the learner's defaults. SGD with momentum 0.9
//! and weight decay 1e-5. `benches/compare/torch_head.py` does the same in PyTorch.
//!
//! `MATMUL_NUM_THREADS=1 cargo bench --bench head` (threads of the default
//! matrix backend; `OPENBLAS_NUM_THREADS` with `--features blas`).

use std::hint::black_box;

use continual::LossKind;
use continual::head::{Head, Optimizer, OptimizerKind, times_transposed, train_step};
use continual::loss::Targets;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use ndarray_rand::RandomExt;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand_distr::Normal;
use rand_chacha::ChaCha8Rng;

/// (feature dim, classes, batch), as in `benches/compare/torch_head.py`.
const SIZES: [(usize, usize, usize); 3] = [(256, 10, 128), (4096, 100, 128), (4096, 1000, 128)];
const HIDDEN: [&[usize]; 2] = [&[], &[512]];

fn label(hidden: &[usize]) -> &'static str {
    if hidden.is_empty() {
        "linear"
    } else {
        "hidden512"
    }
}

fn train_minibatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("head_train_step");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    for (dim, classes, batch) in SIZES {
        let x = Array2::random_using((batch, dim), normal, &mut rng);
        let n_old = classes / 2;
        let labels: Vec<usize> = (0..batch).map(|i| n_old + i % (classes - n_old)).collect();
        let distill: Vec<usize> = (0..n_old).collect();
        let prev = Array2::random_using((batch, n_old), normal, &mut rng);
        let weights = vec![1.0_f32; batch];
        let loss = LossKind::Bce { lambda: 1.0 };
        let kind = OptimizerKind::Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-5,
        };
        for hidden in HIDDEN {
            let mut head = Head::<f32>::new(dim, hidden, classes, &mut rng);
            let mut optimizer = Optimizer::new(kind.clone(), &head);
            let targets = Targets {
                labels: &labels,
                distill: &distill,
                prev_logits: prev.view(),
            };
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(label(hidden), format!("{dim}x{classes}x{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    train_step(
                        &mut head,
                        &mut optimizer,
                        &loss,
                        black_box(x.view()),
                        &targets,
                        Some(&weights),
                        0.01,
                    )
                })
            });
        }
    }
    group.finish();
}

/// The single matrix product rate of the backend, as GFLOP/s (criterion's
/// "elem/s" is FLOP/s here): a large square product, and the three products of
/// the (4096, 100, 128) linear minibatch.
fn sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    // (m, k, n): (m × k)·(k × n).
    for (name, m, k, n) in [
        ("square", 1024, 1024, 1024),
        ("forward", 128, 4096, 100),
        ("weight_grad", 100, 128, 4096),
    ] {
        let a = Array2::random_using((m, k), normal, &mut rng);
        let b = Array2::random_using((k, n), normal, &mut rng);
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::new(name, format!("{m}x{k}x{n}")), |bench| {
            bench.iter(|| black_box(&a).dot(black_box(&b)))
        });
    }
    group.finish();
}

/// One sample through the default head's layers (`y = x·wᵀ` with one row of `x`,
/// the products of predicting one sample at d = 256 with a hidden layer of 512
/// and 100 classes), through `times_transposed` (faer's matrix-vector kernel).
/// Throughput in bytes of weights read: each weight is used once, so the rate
/// is that of streaming `w` from the cache.
fn gemv(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemv");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    for (name, n_out, n_in) in [("hidden", 512, 256), ("output", 100, 512)] {
        let w = Array2::random_using((n_out, n_in), normal, &mut rng);
        let x = Array2::random_using((1, n_in), normal, &mut rng);
        let mut y = Array2::zeros((1, n_out));
        group.throughput(Throughput::Bytes((n_out * n_in * 4) as u64));
        group.bench_function(BenchmarkId::new(name, format!("{n_out}x{n_in}")), |b| {
            b.iter(|| times_transposed(black_box(x.view()), w.view(), false, &mut y))
        });
    }
    group.finish();
}

criterion_group!(benches, train_minibatch, sgemm, gemv);
criterion_main!(benches);

//! One update (accumulation plus solve) of a fresh statistics-based learner, and
//! scoring, at the sizes the `stats` module documents: d = 256 with 6,000 samples
//! (the bundled extractor's features) and d = 4096 with 1,000 (VGG16's fc7).
//!
//! `cargo bench --bench stats`

use std::hint::black_box;

use continual::stats::{Ncm, Ridge, RidgeConfig, Slda, SldaConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, s};
use ndarray_rand::RandomExt;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand_distr::Normal;
use rand_chacha::ChaCha8Rng;

const SIZES: [(usize, usize, usize); 2] = [(256, 6000, 100), (4096, 1000, 100)];

fn data(dim: usize, n: usize, n_classes: usize) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let normal = Normal::new(0.0_f32, 1.0).expect("valid normal");
    let x = Array2::random_using((n, dim), normal, &mut rng);
    let labels = (0..n).map(|i| i % n_classes).collect();
    (x, labels)
}

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats_update");
    group.sample_size(10);
    for (dim, n, n_classes) in SIZES {
        let (x, labels) = data(dim, n, n_classes);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("slda", dim), &dim, |b, &dim| {
            b.iter(|| {
                let mut m = Slda::new(dim, SldaConfig::default()).expect("valid");
                m.update(black_box(x.view()), &labels).expect("updates");
                m
            })
        });
        group.bench_with_input(BenchmarkId::new("ridge", dim), &dim, |b, &dim| {
            b.iter(|| {
                let mut m = Ridge::new(dim, RidgeConfig::default()).expect("valid");
                m.update(black_box(x.view()), &labels).expect("updates");
                m
            })
        });
        group.bench_with_input(BenchmarkId::new("ncm", dim), &dim, |b, &dim| {
            b.iter(|| {
                let mut m = Ncm::new(dim).expect("valid");
                m.update(black_box(x.view()), &labels).expect("updates");
                m
            })
        });
    }
    group.finish();
}

fn scores(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats_scores");
    for (dim, n, n_classes) in SIZES {
        let (x, labels) = data(dim, n, n_classes);
        let mut slda = Slda::new(dim, SldaConfig::default()).expect("valid");
        slda.update(x.view(), &labels).expect("updates");
        let probe = x.slice(s![..1000, ..]);
        group.throughput(Throughput::Elements(1000));
        group.bench_with_input(BenchmarkId::new("slda", dim), &probe, |b, probe| {
            b.iter(|| slda.scores(black_box(probe.view())).expect("scores"))
        });
    }
    group.finish();
}

criterion_group!(benches, update, scores);
criterion_main!(benches);

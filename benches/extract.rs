//! Feature extraction with the bundled model (`models/fashion-vgg.onnx`):
//! images per second at batch 1 and 64, from preprocessed tensors (pure
//! inference) and from PNG files on disk (read, decode, resize, normalise and
//! inference). The images are the bundled Fashion-MNIST test images.
//! `benches/compare/ort_extract.py` runs the same model in Python onnxruntime.
//!
//! Needs ONNX Runtime (`scripts/setup.sh`). `BENCH_THREADS` sets ONNX Runtime's
//! intra-op threads (default: its own choice) and rayon's pool for decoding:
//! `BENCH_THREADS=1 cargo bench --bench extract`

use std::hint::black_box;
use std::path::PathBuf;

use continual::bundled;
use continual::data::read_idx_images;
use continual::extract::{Extractor, ExtractorOptions};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::{DynamicImage, GrayImage};
use ndarray::{Axis, s};

/// Images per measured call.
const N: usize = 256;

fn threads() -> Option<usize> {
    let value = std::env::var("BENCH_THREADS").ok()?;
    Some(value.parse().expect("BENCH_THREADS is a number"))
}

fn extractor(batch_size: usize) -> Extractor {
    let options = ExtractorOptions {
        intra_threads: threads(),
        batch_size,
        ..ExtractorOptions::default()
    };
    Extractor::open(bundled::model(), None, options)
        .expect("the bundled model opens (scripts/setup.sh)")
}

fn extraction(c: &mut Criterion) {
    if let Some(n) = threads() {
        // Decoding runs on rayon's global pool; size it like ONNX Runtime's.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let gray = read_idx_images(&bundled::data().join("t10k-images-idx3-ubyte.gz"))
        .expect("bundled test images");
    let gray = gray.slice(s![..N, .., ..]);
    let images: Vec<DynamicImage> = gray
        .axis_iter(Axis(0))
        .map(|img| {
            let (h, w) = img.dim();
            let pixels = img.iter().copied().collect();
            DynamicImage::ImageLuma8(
                GrayImage::from_raw(w as u32, h as u32, pixels).expect("h·w pixels"),
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<PathBuf> = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let path = dir.path().join(format!("{i:04}.png"));
            img.save(&path).expect("writes a PNG");
            path
        })
        .collect();

    let mut group = c.benchmark_group("extract");
    group.sample_size(20);
    group.throughput(Throughput::Elements(N as u64));
    for batch in [1, 64] {
        let mut ex = extractor(batch);
        let tensor = ex.preprocess(&images).expect("preprocesses");
        group.bench_function(BenchmarkId::new("tensor", format!("batch{batch}")), |b| {
            b.iter(|| {
                ex.extract_tensor(black_box(tensor.view()))
                    .expect("extracts")
            })
        });
        group.bench_function(BenchmarkId::new("files", format!("batch{batch}")), |b| {
            b.iter(|| {
                ex.extract_files(black_box(&paths), &mut |_, _| {})
                    .expect("extracts")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, extraction);
criterion_main!(benches);

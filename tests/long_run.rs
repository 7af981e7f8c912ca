//! Long runs: a hundred one-class steps keep the state size within the bound the
//! memory budget implies and the step time growing no faster than the class count;
//! eight hundred extraction calls (ten thousand by hand) with changing batch sizes
//! keep resident memory bounded after warm-up. Needs
//! the ONNX Runtime library (`scripts/setup.sh`). The figures are printed
//! (`--nocapture`) and recorded in the README's Reliability section.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Clusters;
use continual::extract::{Extractor, ExtractorOptions};
use continual::{Learner, LearnerConfig};
use ndarray::{Array3, Axis, Slice};

/// The tests of this binary measure the process, so they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resident memory of this process in bytes (`VmRSS` of `/proc/self/status`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn hundred_one_class_steps_keep_state_size_and_step_time_bounded() {
    let _serial = serial();
    const DIM: usize = 32;
    const HIDDEN: usize = 16;
    const BUDGET: usize = 200;
    const STEPS: usize = 100;
    let config = LearnerConfig {
        hidden: vec![HIDDEN],
        epochs: 2,
        memory: BUDGET,
        batch_size: 32,
        seed: 3,
        ..LearnerConfig::default()
    };
    let clusters = Clusters::new(DIM, STEPS, 0.5, 9);
    let mut learner = Learner::new(DIM, config).expect("valid");

    // What the state may hold: the empty learner, then per class one output row
    // (weights and bias), one NME mean, a name and a list header; per stored
    // exemplar its feature vector and a length and metadata tag. bincode writes
    // `f32` in 4 bytes and lengths in at most 9.
    let base = learner.encoded_len().expect("encodes");
    let per_class = 4 * (HIDDEN + 1) + 4 * HIDDEN + 16 + 9 + 9;
    let per_exemplar = 4 * DIM + 9 + 1;
    let bound = |t: usize| base + t * per_class + BUDGET * per_exemplar;

    let mut times = Vec::with_capacity(STEPS);
    let mut sizes = Vec::with_capacity(STEPS);
    for step in 0..STEPS {
        let (x, _) = clusters.sample(&[step], 20, step as u64);
        let labels = vec![format!("class{step:03}"); x.nrows()];
        let started = Instant::now();
        learner.learn(x.view(), &labels, None).expect("learns");
        times.push(started.elapsed());

        let size = learner.encoded_len().expect("encodes");
        let t = step + 1;
        assert!(
            size <= bound(t),
            "step {t}: state {size} bytes over the bound {}",
            bound(t)
        );
        let stored: usize = learner.exemplar_counts().iter().sum();
        assert!(stored <= BUDGET);
        sizes.push(size);
    }
    let early = median(times[40..50].to_vec());
    let late = median(times[STEPS - 10..].to_vec());
    eprintln!(
        "state: {} bytes after 1 step, {} after {STEPS} (bound {}); \
         median step time: steps 2-11 {:?}, 41-50 {early:?}, 91-100 {late:?}",
        sizes[0],
        sizes[STEPS - 1],
        bound(STEPS),
        median(times[1..11].to_vec()),
    );
    // Step time is reported, not asserted (timings belong to benchmarks, and a
    // loaded machine would make such a check flaky). Past the first steps the
    // training set stays within the step's samples plus K exemplars; what grows
    // is the output layer and the distillation targets, one class a step, so the
    // time grows about linearly in the number of classes.
}

#[test]
fn thousands_of_extraction_calls_keep_resident_memory_bounded() {
    extraction_calls_keep_resident_memory_bounded(800);
}

/// The same for ten thousand calls, about two minutes on a 2-core machine.
#[test]
#[ignore = "two minutes; run by hand: cargo test --test long_run -- --ignored --nocapture"]
fn ten_thousand_extraction_calls_keep_resident_memory_bounded() {
    extraction_calls_keep_resident_memory_bounded(10_000);
}

/// `calls` extraction calls after 200 warm-up calls, batch sizes cycling; resident
/// memory after warm-up may not grow by more than 16 MiB.
fn extraction_calls_keep_resident_memory_bounded(calls: usize) {
    let _serial = serial();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = continual::data::load_idx_folder(&root.join("data/fashion-mnist-subset"))
        .expect("bundled subset");
    let images: Array3<u8> = data.test_images;
    let mut extractor = Extractor::open(
        root.join("models/fashion-vgg.onnx"),
        None,
        ExtractorOptions {
            batch_size: 64,
            ..ExtractorOptions::default()
        },
    )
    .expect("opens the bundled model");

    // Batch sizes cycle through small, odd, exact and chunked (over 64) shapes.
    let sizes = [1usize, 7, 64, 3, 100, 16, 33, 2, 65, 128];
    let mut call = |k: usize| {
        let n = sizes[k % sizes.len()];
        let start = (k * 13) % (images.len_of(Axis(0)) - n);
        let batch = images.slice_axis(Axis(0), Slice::from(start..start + n));
        let features = extractor.extract_gray(batch).expect("extracts");
        assert_eq!(features.nrows(), n);
    };

    const WARM_UP: usize = 200;
    let before = resident_bytes();
    for k in 0..WARM_UP {
        call(k);
    }
    let warm = resident_bytes();
    let started = Instant::now();
    let mut peak = warm;
    for k in WARM_UP..WARM_UP + calls {
        call(k);
        if k % 50 == 0 {
            peak = peak.max(resident_bytes());
        }
    }
    let after = resident_bytes();
    peak = peak.max(after);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "resident memory: {:.1} MiB before, {:.1} MiB after {WARM_UP} warm-up calls, \
         peak {:.1} MiB and {:.1} MiB after {calls} more ({:.1} s)",
        mib(before),
        mib(warm),
        mib(peak),
        mib(after),
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak <= warm + (16 << 20),
        "resident memory grew from {:.1} MiB to {:.1} MiB after warm-up",
        mib(warm),
        mib(peak)
    );
}

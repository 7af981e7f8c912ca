//! Same inputs, same answer: bit-identical learner states across runs, processes
//! and thread counts; features that do not depend on how extraction is shared
//! between threads; a learner read from several threads at once. Needs the ONNX
//! Runtime library (`scripts/setup.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};

use common::{Clusters, names};
use continual::extract::{Extractor, ExtractorOptions};
use continual::{Classifier, Learner, LearnerConfig, Strategy};
use ndarray::{Array2, Array3, Axis};

const WRITER_ENV: &str = "CONTINUAL_DETERMINISM_STATE";

/// Feature width of the learners trained here. With the hidden layer of 512
/// below, the first layer's forward product and weight gradient on a full
/// minibatch of 128 hold 128·64·512 ≈ 4.2 M multiply-adds and `m·k + k·n ≥ 2¹⁵`:
/// large enough for `head::matmul_into` to hand them to matrixmultiply whole,
/// which splits them across threads when `MATMUL_NUM_THREADS` allows it.
const DIM: usize = 64;

// A learner is read from several threads through `&Learner`, an extractor is
// moved into or shared by a worker thread.
const _: () = {
    const fn sync_and_send<T: Sync + Send>() {}
    const fn send<T: Send>() {}
    sync_and_send::<Learner>();
    send::<Extractor>();
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn config(strategy: Strategy) -> LearnerConfig {
    LearnerConfig {
        // See DIM: wide enough for the head's products to run on several threads.
        hidden: vec![512],
        epochs: 3,
        memory: 40,
        seed: 11,
        strategy,
        ..LearnerConfig::default()
    }
}

/// Three steps on seeded clusters; the state file's bytes.
fn trained_state(strategy: Strategy, dir: &Path) -> Vec<u8> {
    let clusters = Clusters::new(DIM, 6, 0.8, 5);
    let mut learner = Learner::new(DIM, config(strategy)).expect("valid");
    for (k, classes) in [vec![0, 1, 2], vec![3, 4], vec![5, 0]].iter().enumerate() {
        let (x, y) = clusters.sample(classes, 60, k as u64);
        learner.learn(x.view(), &names(&y), None).expect("learns");
    }
    let path = dir.join("state");
    learner.save(&path).expect("saves");
    std::fs::read(&path).expect("reads")
}

fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::Icarl,
        Strategy::Slda(Default::default()),
        Strategy::Ridge(Default::default()),
        Strategy::Ncm,
    ]
}

/// The child's role: writes the iCaRL learner's state to the file named by
/// `CONTINUAL_DETERMINISM_STATE`. Does nothing as an ordinary test.
#[test]
fn state_writer_child() {
    let Some(out) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = trained_state(Strategy::Icarl, dir.path());
    std::fs::write(out, bytes).expect("writes");
}

#[test]
fn same_seed_and_inputs_give_bit_identical_states() {
    let dir = tempfile::tempdir().expect("temp dir");
    for strategy in strategies() {
        let a = trained_state(strategy.clone(), dir.path());
        let b = trained_state(strategy.clone(), dir.path());
        assert!(a == b, "{} states differ between two runs", strategy.name());
    }
}

#[test]
fn states_are_bit_identical_across_processes_and_matrix_threads() {
    // matrixmultiply reads MATMUL_NUM_THREADS once per process, so each thread
    // count gets a process of its own. It splits a product over rows or columns
    // of the result, never over the summed dimension, so every element is
    // summed in the same order whatever the count.
    let dir = tempfile::tempdir().expect("temp dir");
    let here = trained_state(Strategy::Icarl, dir.path());
    for threads in ["1", "2", "4"] {
        let out: PathBuf = dir.path().join(format!("child{threads}"));
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "state_writer_child", "--test-threads=1"])
            .env(WRITER_ENV, &out)
            .env("MATMUL_NUM_THREADS", threads)
            .status()
            .expect("runs the child");
        assert!(status.success());
        assert!(
            std::fs::read(&out).expect("child wrote") == here,
            "the child with MATMUL_NUM_THREADS={threads} wrote another state"
        );
    }
}

#[test]
fn learning_does_not_depend_on_the_thread_pool_size() {
    // The head's matrix products (matrixmultiply, with threads of its own) and
    // the statistics (faer, without rayon) do not use rayon's pool; the state
    // must not change with the pool the caller runs in.
    let dir = tempfile::tempdir().expect("temp dir");
    for strategy in strategies() {
        let states: Vec<Vec<u8>> = [1, 2]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool");
                pool.install(|| trained_state(strategy.clone(), dir.path()))
            })
            .collect();
        assert!(
            states[0] == states[1],
            "{}: 1 and 2 threads differ",
            strategy.name()
        );
    }
}

#[test]
fn a_learner_read_from_several_threads_answers_as_from_one() {
    let clusters = Clusters::new(DIM, 6, 0.8, 5);
    let dir = tempfile::tempdir().expect("temp dir");
    trained_state(Strategy::Icarl, dir.path());
    let learner = Learner::load(dir.path().join("state")).expect("loads");
    let probes: Vec<Array2<f32>> = (0..4)
        .map(|k| clusters.sample(&[0, 1, 2, 3, 4, 5], 5, 100 + k).0)
        .collect();
    let sequential: Vec<Array2<f32>> = probes
        .iter()
        .map(|x| learner.scores(x.view(), Classifier::Nme).expect("scores"))
        .collect();

    // Plain shared references across scoped threads.
    let learner_ref = &learner;
    let concurrent: Vec<Array2<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = probes
            .iter()
            .map(|x| {
                s.spawn(move || {
                    // Many reads, each compared, so that reads overlap across threads.
                    let first = learner_ref
                        .scores(x.view(), Classifier::Nme)
                        .expect("scores");
                    for _ in 0..20 {
                        let again = learner_ref
                            .scores(x.view(), Classifier::Nme)
                            .expect("scores");
                        assert_eq!(again, first);
                    }
                    first
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(concurrent, sequential);

    // Behind a lock, readers while a writer learns a step between their reads:
    // every read sees either the state before the step or the one after it.
    let shared = Arc::new(RwLock::new(learner.clone()));
    let (x_new, y_new) = clusters.sample(&[5], 10, 7);
    let mut after = learner.clone();
    after
        .learn(x_new.view(), &names(&y_new), None)
        .expect("learns");
    let after_scores = after
        .scores(probes[0].view(), Classifier::Nme)
        .expect("scores");
    std::thread::scope(|s| {
        let writer = {
            let shared = Arc::clone(&shared);
            let (x_new, y_new) = (&x_new, &y_new);
            s.spawn(move || {
                shared
                    .write()
                    .expect("lock")
                    .learn(x_new.view(), &names(y_new), None)
                    .expect("learns");
            })
        };
        for _ in 0..2 {
            let shared = Arc::clone(&shared);
            let (probe, before, after) = (&probes[0], &sequential[0], &after_scores);
            s.spawn(move || {
                for _ in 0..50 {
                    let got = shared
                        .read()
                        .expect("lock")
                        .scores(probe.view(), Classifier::Nme)
                        .expect("scores");
                    assert!(got == *before || got == *after, "a torn read");
                }
            });
        }
        writer.join().expect("writer");
    });
    assert_eq!(
        shared
            .read()
            .expect("lock")
            .scores(probes[0].view(), Classifier::Nme)
            .expect("scores"),
        after_scores
    );
}

/// The first `n` bundled test images, `(n, 28, 28)`.
fn images(n: usize) -> Array3<u8> {
    let data = continual::data::load_idx_folder(&root().join("data/fashion-mnist-subset"))
        .expect("bundled subset");
    data.test_images
        .slice_axis(Axis(0), ndarray::Slice::from(0..n))
        .to_owned()
}

fn open(intra_threads: Option<usize>) -> Extractor {
    Extractor::open(
        root().join("models/fashion-vgg.onnx"),
        None,
        ExtractorOptions {
            intra_threads,
            batch_size: 16,
            ..ExtractorOptions::default()
        },
    )
    .expect("opens the bundled model")
}

/// The fixture image files, sorted.
fn fixture_images() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/images"))
        .expect("fixture images")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn extraction_is_repeatable_and_thread_count_changes_it_at_most_by_rounding() {
    let images = images(64);
    let mut one = open(Some(1));
    let first = one.extract_gray(images.view()).expect("extracts");
    let again = one.extract_gray(images.view()).expect("extracts");
    assert_eq!(first, again, "one session, same input, same features");
    let reopened = open(Some(1)).extract_gray(images.view()).expect("extracts");
    assert_eq!(
        first, reopened,
        "a new session with one thread gives the same"
    );

    let two = open(Some(2)).extract_gray(images.view()).expect("extracts");
    let scale = first.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&first, &two);
    eprintln!("1 vs 2 intra-op threads: max |difference| {diff:e} (largest feature {scale})");
    assert!(diff <= 1e-5 * scale.max(1.0), "1 vs 2 threads: {diff}");
}

#[test]
fn one_extractor_shared_by_threads_gives_the_sequential_features() {
    let images = images(48);
    let mut extractor = open(Some(1));
    let chunks: Vec<Array3<u8>> = images
        .axis_chunks_iter(Axis(0), 12)
        .map(|c| c.to_owned())
        .collect();
    let sequential: Vec<Array2<f32>> = chunks
        .iter()
        .map(|c| extractor.extract_gray(c.view()).expect("extracts"))
        .collect();

    let shared = Mutex::new(extractor);
    let concurrent: Vec<Array2<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|c| {
                let shared = &shared;
                s.spawn(move || {
                    shared
                        .lock()
                        .expect("lock")
                        .extract_gray(c.view())
                        .expect("extracts")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(concurrent, sequential);

    // One extractor per thread, each on its own session, agrees too.
    let per_thread: Vec<Array2<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|c| s.spawn(move || open(Some(1)).extract_gray(c.view()).expect("extracts")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(per_thread, sequential);
}

#[test]
fn image_files_decoded_on_one_or_two_threads_give_the_same_features() {
    let paths = fixture_images();
    let mut extractor = open(Some(1));
    let features: Vec<Array2<f32>> = [1, 2]
        .iter()
        .map(|&threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| {
                extractor
                    .extract_files(&paths, &mut |_, _| {})
                    .expect("extracts")
                    .features
            })
        })
        .collect();
    assert_eq!(features[0], features[1]);
}

#[test]
fn image_files_give_the_features_of_their_decoded_images_with_and_without_overlap() {
    // With fewer intra-op threads than cores the next chunk is decoded while the
    // model runs; with one per core each chunk is decoded first. Either way the
    // features are those of the same images decoded by the caller. The fixture
    // list is repeated to span several chunks of 32 files.
    let fixture = fixture_images();
    let paths: Vec<PathBuf> = fixture.iter().cycle().take(75).cloned().collect();
    let decoded: Vec<image::DynamicImage> = paths
        .iter()
        .map(|p| image::open(p).expect("fixture decodes"))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for threads in [1, cores] {
        let mut extractor = open(Some(threads));
        let from_files = extractor
            .extract_files(&paths, &mut |_, _| {})
            .expect("extracts files");
        assert_eq!(from_files.kept, (0..paths.len()).collect::<Vec<_>>());
        let from_images = extractor.extract_images(&decoded).expect("extracts images");
        assert_eq!(
            from_files.features, from_images,
            "{threads} intra-op thread(s): files and decoded images differ"
        );
    }
}

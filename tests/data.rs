//! Data loading and feature caches through the public API: IDX files, image
//! folders, and caches made with the bundled model. Needs the ONNX Runtime
//! library (`scripts/setup.sh`).

use std::path::{Path, PathBuf};

use continual::Error;
use continual::data::{
    FeatureCache, TEST, TRAIN, load_idx_folder, read_idx_images, read_idx_labels, scan_image_folder,
};
use continual::extract::{Extractor, ExtractorOptions, ModelSpec};
use ndarray::{Array2, s};
use ndarray_npy::read_npy;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn subset_dir() -> PathBuf {
    root().join("data/fashion-mnist-subset")
}

fn open_bundled() -> Extractor {
    Extractor::open(
        root().join("models/fashion-vgg.onnx"),
        None,
        ExtractorOptions::default(),
    )
    .unwrap_or_else(|e| panic!("opening the bundled model: {e}"))
}

/// Copies the ten fixture PNGs (`NN_<label>.png`) into `<dir>/<class name>/`,
/// spread over three classes, plus files that must be ignored.
fn make_image_folder(dir: &Path) -> Vec<(String, String)> {
    let names = ["Trouser", "T-shirt", "Bag"];
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/images"))
        .expect("fixture images")
        .map(|entry| entry.expect("entry").path())
        .collect();
    sources.sort();
    let mut placed = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let class = names[i % names.len()];
        let file = source
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(dir.join(class)).expect("class folder");
        std::fs::copy(&source, dir.join(class).join(&file)).expect("copy");
        placed.push((class.to_string(), file));
    }
    std::fs::write(dir.join("Bag/notes.txt"), "not an image").expect("write");
    std::fs::write(dir.join("README.md"), "files at the top are ignored").expect("write");
    std::fs::create_dir_all(dir.join(".hidden")).expect("hidden folder");
    std::fs::copy(
        root().join("tests/data/keras_tiny.png"),
        dir.join(".hidden/x.png"),
    )
    .expect("copy");
    placed.sort();
    placed
}

#[test]
fn bundled_subset_loads_with_its_class_names() {
    let data = load_idx_folder(&subset_dir()).expect("subset loads");
    assert_eq!(data.train_images.dim(), (3000, 28, 28));
    assert_eq!(data.test_images.dim(), (1000, 28, 28));
    assert_eq!(data.class_names.len(), 10);
    assert_eq!(data.class_names[0], "T-shirt/top");
    assert_eq!(data.class_names[9], "Ankle boot");
    for class in 0..10u8 {
        assert_eq!(
            data.train_labels.iter().filter(|&&l| l == class).count(),
            300
        );
        assert_eq!(
            data.test_labels.iter().filter(|&&l| l == class).count(),
            100
        );
    }
    // The single-file readers agree with the folder loader.
    let labels = read_idx_labels(&subset_dir().join("t10k-labels-idx1-ubyte.gz")).expect("labels");
    assert_eq!(labels, data.test_labels);
}

#[test]
fn truncated_gzip_idx_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(subset_dir().join("t10k-images-idx3-ubyte.gz")).expect("read");
    let path = dir.path().join("cut-images.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = read_idx_images(&path).expect_err("truncated");
    assert!(matches!(err, Error::Data { .. }), "{err}");
    assert!(err.to_string().contains("cut-images.gz"), "{err}");
}

/// The full data set as Debian's `dataset-fashion-mnist` installs it.
#[test]
#[ignore = "needs Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"]
fn debian_fashion_mnist_loads() {
    let data = load_idx_folder(Path::new("/usr/share/datasets/fashion-mnist")).expect("loads");
    assert_eq!(data.train_images.dim(), (60000, 28, 28));
    assert_eq!(data.test_images.dim(), (10000, 28, 28));
    assert_eq!(
        data.class_names,
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn image_folder_order_is_by_class_then_file_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let placed = make_image_folder(dir.path());
    let folder = scan_image_folder(dir.path()).expect("scans");
    assert_eq!(folder.class_names, ["Bag", "T-shirt", "Trouser"]);
    assert_eq!(folder.items.len(), 10);

    let listed: Vec<(String, String)> = folder
        .items
        .iter()
        .map(|(path, label)| {
            let file = path
                .file_name()
                .expect("file")
                .to_string_lossy()
                .into_owned();
            (folder.class_names[*label].clone(), file)
        })
        .collect();
    assert_eq!(listed, placed);
    assert!(folder.labels().windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn image_folder_errors_name_the_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = scan_image_folder(dir.path()).expect_err("no classes");
    assert!(err.to_string().contains("no class sub-folders"), "{err}");

    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    std::fs::write(dir.path().join("empty/a.txt"), "x").expect("write");
    let err = scan_image_folder(dir.path()).expect_err("empty class");
    assert!(
        err.to_string().contains("empty") && err.to_string().contains("no images"),
        "{err}"
    );

    let err = scan_image_folder(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn image_folder_to_cache_and_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_image_folder(dir.path());
    let folder = scan_image_folder(dir.path()).expect("scans");
    let mut extractor = open_bundled();

    let mut reports = Vec::new();
    let (cache, skipped) =
        FeatureCache::from_image_folder(&mut extractor, &folder, TRAIN, &mut |done, total| {
            reports.push((done, total))
        })
        .expect("extracts");
    assert!(skipped.is_empty());
    assert_eq!(reports.last(), Some(&(10, 10)));
    assert_eq!(cache.features.dim(), (10, 256));
    assert_eq!(cache.labels, folder.labels());
    assert_eq!(cache.split, vec![TRAIN; 10]);
    assert_eq!(cache.paths[0], folder.items[0].0.to_string_lossy());
    assert_eq!(cache.model_sha256, extractor.model_sha256());

    // Each row equals the Python reference row of the same fixture file.
    let reference: Array2<f32> =
        read_npy(root().join("tests/data/reference/fashion_vgg_features.npy")).expect("reference");
    for (row, (path, _)) in folder.items.iter().enumerate() {
        let index: usize = path.file_name().expect("file").to_string_lossy()[..2]
            .parse()
            .expect("NN_ prefix");
        let diff = (&cache.features.row(row) - &reference.row(index))
            .iter()
            .fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(diff <= 1e-5, "{}: {diff}", path.display());
    }

    let path = dir.path().join("folder.npz");
    cache.save(&path).expect("saves");
    let loaded = FeatureCache::load(&path).expect("loads");
    assert_eq!(loaded.features, cache.features);
    assert_eq!(loaded.labels, cache.labels);
    assert_eq!(loaded.class_names, cache.class_names);
    assert_eq!(loaded.paths, cache.paths);
    loaded
        .check_compatible(&cache)
        .expect("same model and spec");
    assert_eq!(
        serde_json::from_str::<ModelSpec>(&loaded.spec_json).expect("spec JSON"),
        *extractor.spec()
    );
}

#[test]
fn idx_subset_to_cache_and_back() {
    let data = load_idx_folder(&subset_dir()).expect("subset loads");
    let mut extractor = open_bundled();
    let mut last = (0, 0);
    let cache = FeatureCache::from_idx(&mut extractor, &data, &mut |done, total| {
        last = (done, total)
    })
    .expect("extracts");
    assert_eq!(last, (4000, 4000));
    assert_eq!(cache.features.dim(), (4000, 256));
    assert_eq!(cache.split.iter().filter(|&&s| s == TEST).count(), 1000);
    assert_eq!(cache.paths[3000], "test:0");
    assert_eq!(cache.class_names, data.class_names);

    let reference: Array2<f32> =
        read_npy(root().join("tests/data/reference/subset_test_first64_features.npy"))
            .expect("reference");
    let test = cache.subset(TEST);
    let diff = (&test.features.slice(s![..64, ..]) - &reference)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(diff <= 1e-5, "max |rust - python| = {diff}");
    assert_eq!(
        test.labels[..5],
        data.test_labels[..5]
            .iter()
            .map(|&l| usize::from(l))
            .collect::<Vec<_>>()[..]
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("subset.npz");
    cache.save(&path).expect("saves");
    let loaded = FeatureCache::load(&path).expect("loads");
    assert_eq!(
        loaded,
        FeatureCache {
            spec_json: loaded.spec_json.clone(),
            ..cache.clone()
        }
    );
}

#[test]
fn caches_of_another_model_or_spec_are_not_mixed() {
    let data = load_idx_folder(&subset_dir()).expect("subset loads");
    let small = continual::data::IdxDataset {
        train_images: data.train_images.slice(s![..8, .., ..]).to_owned(),
        train_labels: data.train_labels[..8].to_vec(),
        test_images: data.test_images.slice(s![..4, .., ..]).to_owned(),
        test_labels: data.test_labels[..4].to_vec(),
        class_names: data.class_names.clone(),
    };
    let mut extractor = open_bundled();
    let cache = FeatureCache::from_idx(&mut extractor, &small, &mut |_, _| {}).expect("extracts");

    // Same model, other normalisation.
    let other_spec = ModelSpec {
        mean: vec![0.5],
        ..extractor.spec().clone()
    };
    let mut other = Extractor::open(
        extractor.model_path(),
        Some(other_spec),
        ExtractorOptions::default(),
    )
    .expect("opens");
    let other_cache = FeatureCache::from_idx(&mut other, &small, &mut |_, _| {}).expect("extracts");
    let err = cache.concat(&other_cache).expect_err("other spec");
    assert!(err.to_string().contains("different model specs"), "{err}");

    // Another model file.
    let mut foreign = other_cache.clone();
    foreign.spec_json = cache.spec_json.clone();
    foreign.model_sha256 = "0".repeat(64);
    let err = cache.check_compatible(&foreign).expect_err("other model");
    assert!(err.to_string().contains("different models"), "{err}");

    // The same extractor twice mixes fine.
    let twice = cache.concat(&cache).expect("compatible");
    assert_eq!(twice.len(), 24);
}

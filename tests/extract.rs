//! Feature extraction through the public API, on the bundled model and the tiny
//! graphs in `tests/data/`. Needs the ONNX Runtime library (`scripts/setup.sh`);
//! without it these tests fail with the error that says how to install it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use continual::Error;
use continual::data::load_idx_folder;
use continual::extract::{
    ColorOrder, Device, Extractor, ExtractorOptions, Layout, ModelSpec, Resize,
};
use ndarray::{Array2, Array4, Axis, s};
use ndarray_npy::read_npy;

/// Features must match Python onnxruntime's within this (max absolute difference).
const PARITY_TOLERANCE: f32 = 1e-5;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

fn bundled_model() -> PathBuf {
    root().join("models/fashion-vgg.onnx")
}

fn reference(name: &str) -> PathBuf {
    data("reference").join(name)
}

/// The bundled model with default options, opened once per test binary.
fn bundled() -> MutexGuard<'static, Extractor> {
    static BUNDLED: OnceLock<Mutex<Extractor>> = OnceLock::new();
    BUNDLED
        .get_or_init(|| {
            let extractor = Extractor::open(bundled_model(), None, ExtractorOptions::default())
                .unwrap_or_else(|e| panic!("opening the bundled model: {e}"));
            Mutex::new(extractor)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pngs(folder: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data(folder))
        .expect("fixture folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 10, "ten fixture images in {folder}");
    paths
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim(), "shapes to compare");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn no_progress() -> impl FnMut(usize, usize) {
    |_, _| {}
}

#[test]
fn bundled_model_reports_what_it_is() {
    let extractor = bundled();
    assert_eq!(extractor.provider(), "CPU");
    assert_eq!(extractor.dim(), 256);
    assert_eq!(extractor.image_shape(), [1, 28, 28]);
    let spec = extractor.spec();
    assert_eq!(spec.layout, Some(Layout::Nchw));
    assert_eq!(spec.input.as_deref(), Some("image"));
    assert_eq!(spec.output.as_deref(), Some("features"));
    assert_eq!(
        *spec,
        ModelSpec::from_json_file(&root().join("models/fashion-vgg.json")).expect("spec parses")
    );
    // The checksum recorded in models/MODEL_CARD.md.
    assert_eq!(
        extractor.model_sha256(),
        "46eba8fb33356222138386033db295ec6ef4993501d7f2a4b80ba8113d618cae"
    );
}

#[test]
fn tensor_features_match_python_onnxruntime() {
    let input: Array4<f32> = read_npy(reference("fashion_vgg_input.npy")).expect("reference input");
    let expected: Array2<f32> =
        read_npy(reference("fashion_vgg_features.npy")).expect("reference features");
    let features = bundled().extract_tensor(input.view()).expect("extracts");
    let diff = max_abs_diff(&features, &expected);
    assert!(diff <= PARITY_TOLERANCE, "max |rust - python| = {diff}");
}

#[test]
fn png_files_preprocess_to_the_reference_input_and_features() {
    let reference_input: Array4<f32> =
        read_npy(reference("fashion_vgg_input.npy")).expect("reference input");
    let expected: Array2<f32> =
        read_npy(reference("fashion_vgg_features.npy")).expect("reference features");
    let images: Vec<image::DynamicImage> = pngs("images")
        .iter()
        .map(|p| image::open(p).expect("fixture decodes"))
        .collect();

    let mut extractor = bundled();
    let input = extractor.preprocess(&images).expect("preprocesses");
    let input_diff = input
        .iter()
        .zip(&reference_input)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert_eq!(input.dim(), reference_input.dim());
    assert!(
        input_diff <= 1e-6,
        "max |input - reference input| = {input_diff}"
    );

    let files = extractor
        .extract_files(&pngs("images"), &mut no_progress())
        .expect("extracts");
    assert_eq!(files.kept, (0..10).collect::<Vec<_>>());
    assert!(files.skipped.is_empty());
    let diff = max_abs_diff(&files.features, &expected);
    assert!(diff <= PARITY_TOLERANCE, "max |rust - python| = {diff}");
}

#[test]
fn rgb_files_with_gray_pixels_give_the_gray_features() {
    let mut extractor = bundled();
    let gray = extractor
        .extract_files(&pngs("images"), &mut no_progress())
        .expect("gray");
    let rgb = extractor
        .extract_files(&pngs("images_rgb"), &mut no_progress())
        .expect("rgb");
    assert_eq!(gray.features, rgb.features);
}

#[test]
fn one_batch_equals_single_image_runs() {
    let input: Array4<f32> = read_npy(reference("fashion_vgg_input.npy")).expect("reference input");
    let mut extractor = bundled();
    let batched = extractor.extract_tensor(input.view()).expect("batch of 10");
    for i in 0..input.len_of(Axis(0)) {
        let single = extractor
            .extract_tensor(input.slice(s![i..i + 1, .., .., ..]))
            .expect("batch of 1");
        let diff = max_abs_diff(&single, &batched.slice(s![i..i + 1, ..]).to_owned());
        assert!(
            diff <= PARITY_TOLERANCE,
            "image {i}: max |single - batched| = {diff}"
        );
    }

    // Batches that do not divide the input: 10 = 4 + 4 + 2.
    let mut small_batches = Extractor::open(
        bundled_model(),
        None,
        ExtractorOptions {
            batch_size: 4,
            intra_threads: Some(1),
            ..ExtractorOptions::default()
        },
    )
    .expect("opens");
    let chunked = small_batches
        .extract_tensor(input.view())
        .expect("extracts");
    let diff = max_abs_diff(&chunked, &batched);
    assert!(diff <= PARITY_TOLERANCE, "batch 4 vs 10: {diff}");
}

#[test]
fn idx_images_match_python_onnxruntime() {
    let expected: Array2<f32> =
        read_npy(reference("subset_test_first64_features.npy")).expect("reference features");
    let subset = load_idx_folder(&root().join("data/fashion-mnist-subset")).expect("subset loads");
    let features = bundled()
        .extract_gray(subset.test_images.slice(s![..64, .., ..]))
        .expect("extracts");
    let diff = max_abs_diff(&features, &expected);
    assert!(diff <= PARITY_TOLERANCE, "max |rust - python| = {diff}");
}

#[test]
fn empty_input_gives_empty_features() {
    let mut extractor = bundled();
    let none = extractor
        .extract_tensor(Array4::zeros((0, 1, 28, 28)).view())
        .expect("nothing to do");
    assert_eq!(none.dim(), (0, 256));
    let files = extractor
        .extract_files(&[], &mut no_progress())
        .expect("no files");
    assert_eq!(files.features.dim(), (0, 256));
}

// Keras-style path: NHWC, BGR, Caffe means, on `keras_tiny.onnx` (mean over H and W
// of its input). Every pixel of keras_tiny.png is (R, G, B) = (200, 100, 50), so in
// BGR minus the means [103.939, 116.779, 123.68] each position holds
// [50 − 103.939, 100 − 116.779, 200 − 123.68] = [−53.939, −16.779, 76.32], and so
// does the mean over the 4×4 positions.
const KERAS_TINY_ANSWER: [f32; 3] = [-53.939, -16.779, 76.32];

fn assert_keras_answer(features: &Array2<f32>) {
    assert_eq!(features.ncols(), 3);
    for row in features.rows() {
        for (got, want) in row.iter().zip(KERAS_TINY_ANSWER) {
            assert!((got - want).abs() < 1e-4, "{row} vs {KERAS_TINY_ANSWER:?}");
        }
    }
}

#[test]
fn keras_style_nhwc_bgr_caffe_means() {
    // Spec from tests/data/keras_tiny.json, beside the model.
    let mut extractor =
        Extractor::open(data("keras_tiny.onnx"), None, ExtractorOptions::default()).expect("opens");
    assert_eq!(extractor.image_shape(), [4, 4, 3]);
    assert_eq!(extractor.dim(), 3);
    let files = extractor
        .extract_files(
            &[data("keras_tiny.png"), data("keras_tiny.png")],
            &mut no_progress(),
        )
        .expect("extracts");
    assert_keras_answer(&files.features);

    // The Keras preset at this graph's size, layout left to detection.
    let spec = ModelSpec {
        height: Some(4),
        width: Some(4),
        layout: None,
        ..ModelSpec::preset("keras-vgg16").expect("preset exists")
    };
    let mut extractor = Extractor::open(
        data("keras_tiny.onnx"),
        Some(spec),
        ExtractorOptions::default(),
    )
    .expect("opens");
    assert_eq!(extractor.spec().layout, Some(Layout::Nhwc));
    assert_eq!(extractor.spec().color, ColorOrder::Bgr);
    // A larger image of the same colour is resized to 4×4 first.
    let big = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        37,
        21,
        image::Rgb([200, 100, 50]),
    ));
    assert_keras_answer(&extractor.extract_images(&[big]).expect("extracts"));
}

#[test]
fn fixed_batch_graph_runs_padded_batches() {
    // `fixed_batch2.onnx` takes exactly 2 images (the Keras graph otherwise): 3
    // images run as 2 + (1 padded to 2), and the padding's row is dropped.
    let spec = ModelSpec::from_json_file(&data("keras_tiny.json")).expect("spec");
    let mut extractor = Extractor::open(
        data("fixed_batch2.onnx"),
        Some(spec),
        ExtractorOptions::default(),
    )
    .expect("opens");
    assert_eq!(extractor.dim(), 3);
    let pixel = image::Rgb([200, 100, 50]);
    let images = vec![image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 4, pixel)); 3];
    let features = extractor.extract_images(&images).expect("extracts");
    assert_eq!(features.nrows(), 3);
    assert_keras_answer(&features);
}

#[test]
fn feature_dimension_unknown_to_the_graph_is_found_by_a_run() {
    // `dynamic_dim.onnx` declares its output (N, D) and returns the flattened
    // input, D = 4·4·3 = 48.
    let spec = ModelSpec {
        scale: 1.0,
        ..ModelSpec::from_json_file(&data("keras_tiny.json")).expect("spec")
    };
    let spec = ModelSpec {
        mean: vec![0.0],
        std: vec![1.0],
        color: ColorOrder::Rgb,
        ..spec
    };
    let mut extractor = Extractor::open(
        data("dynamic_dim.onnx"),
        Some(spec),
        ExtractorOptions::default(),
    )
    .expect("opens");
    assert_eq!(extractor.dim(), 48);
    let input = Array4::from_shape_fn((5, 4, 4, 3), |(n, y, x, c)| {
        (n * 100 + y * 12 + x * 3 + c) as f32
    });
    let features = extractor.extract_tensor(input.view()).expect("extracts");
    assert_eq!(
        features,
        input.into_shape_with_order((5, 48)).expect("same length")
    );
}

#[test]
fn corrupt_image_is_named_or_skipped() {
    let mut paths = pngs("images");
    paths.insert(3, data("corrupt.png"));

    let err = bundled()
        .extract_files(&paths, &mut no_progress())
        .expect_err("corrupt file");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("corrupt.png"), "{err}");

    let mut skipping = Extractor::open(
        bundled_model(),
        None,
        ExtractorOptions {
            skip_bad_images: true,
            batch_size: 4,
            ..ExtractorOptions::default()
        },
    )
    .expect("opens");
    let mut calls = Vec::new();
    let files = skipping
        .extract_files(&paths, &mut |done, total| calls.push((done, total)))
        .expect("skips the bad file");
    assert_eq!(files.skipped.len(), 1);
    assert_eq!(files.skipped[0].0, data("corrupt.png"));
    assert_eq!(files.kept, [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(calls.last(), Some(&(11, 11)));

    let expected: Array2<f32> =
        read_npy(reference("fashion_vgg_features.npy")).expect("reference features");
    let diff = max_abs_diff(&files.features, &expected);
    assert!(diff <= PARITY_TOLERANCE, "max |rust - python| = {diff}");
}

#[test]
fn output_that_is_not_a_vector_per_image_is_refused() {
    let spec = ModelSpec::from_json_file(&root().join("models/fashion-vgg.json")).expect("spec");
    let err = Extractor::open(
        data("bad_scalar_output.onnx"),
        Some(spec),
        ExtractorOptions::default(),
    )
    .expect_err("scalar output");
    assert!(matches!(err, Error::Model { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("bad_scalar_output.onnx"), "{message}");
    assert!(
        message.contains("not one feature vector per image"),
        "{message}"
    );
}

#[test]
fn input_of_the_wrong_rank_is_refused() {
    let err = Extractor::open(
        data("bad_rank2_input.onnx"),
        Some(ModelSpec::from_json("{}").expect("empty spec")),
        ExtractorOptions::default(),
    )
    .expect_err("rank 2 input");
    let message = err.to_string();
    assert!(matches!(err, Error::Model { .. }), "{message}");
    assert!(message.contains("bad_rank2_input.onnx"), "{message}");
    assert!(
        message.contains("rank 2") && message.contains("rank-4"),
        "{message}"
    );
}

#[test]
fn wrong_channel_count_is_refused() {
    // The spec claims colour input; the graph takes one channel.
    let spec = ModelSpec {
        channels: Some(3),
        mean: vec![0.5],
        std: vec![0.5],
        ..ModelSpec::from_json_file(&root().join("models/fashion-vgg.json")).expect("spec")
    };
    let err = Extractor::open(bundled_model(), Some(spec), ExtractorOptions::default())
        .expect_err("channel mismatch");
    let message = err.to_string();
    assert!(matches!(err, Error::Model { .. }), "{message}");
    assert!(
        message.contains("channels 1") && message.contains("spec says 3"),
        "{message}"
    );

    // A tensor with three channels for a one-channel model.
    let err = bundled()
        .extract_tensor(Array4::zeros((2, 3, 28, 28)).view())
        .expect_err("3 channels");
    match err {
        Error::Shape { op, expected, got } => {
            assert_eq!(op, "extract_tensor");
            assert_eq!(expected[1..], [1, 28, 28]);
            assert_eq!(got, [2, 3, 28, 28]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn gray_arrays_of_another_size_are_resized() {
    // A constant 56×56 image resizes to the constant 28×28 image.
    let mut extractor = bundled();
    let big = ndarray::Array3::<u8>::from_elem((1, 56, 56), 90);
    let small = ndarray::Array3::<u8>::from_elem((1, 28, 28), 90);
    let from_big = extractor.extract_gray(big.view()).expect("resized");
    let from_small = extractor.extract_gray(small.view()).expect("as is");
    assert_eq!(from_big, from_small);

    let err = extractor
        .extract_gray(ndarray::Array3::<u8>::zeros((1, 0, 28)).view())
        .expect_err("empty image");
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn missing_model_file_is_named() {
    let err = Extractor::open(
        data("no-such-model.onnx"),
        None,
        ExtractorOptions::default(),
    )
    .expect_err("missing file");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("no-such-model.onnx"), "{err}");
}

#[test]
fn file_that_is_not_a_model_is_named() {
    let spec = ModelSpec::from_json("{}").expect("empty spec");
    let err = Extractor::open(
        data("not_a_model.onnx"),
        Some(spec),
        ExtractorOptions::default(),
    )
    .expect_err("not a model");
    assert!(matches!(err, Error::Model { .. }), "{err}");
    assert!(err.to_string().contains("not_a_model.onnx"), "{err}");
}

#[test]
fn model_without_a_spec_names_the_missing_spec_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("copy.onnx");
    std::fs::copy(bundled_model(), &model).expect("copy the model");
    let err = Extractor::open(&model, None, ExtractorOptions::default()).expect_err("no spec");
    let message = err.to_string();
    assert!(
        message.contains("copy.onnx") && message.contains("copy.json"),
        "{message}"
    );
    assert!(message.contains("torchvision-vgg16"), "{message}");
}

#[test]
fn missing_runtime_library_is_named() {
    let options = ExtractorOptions {
        runtime_library: Some(PathBuf::from("/nonexistent/libonnxruntime.so.1.31.1")),
        ..ExtractorOptions::default()
    };
    let err = Extractor::open(bundled_model(), None, options).expect_err("no runtime there");
    assert!(matches!(err, Error::Runtime(_)), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/libonnxruntime.so.1.31.1"),
        "{err}"
    );
}

#[test]
fn cuda_falls_back_to_cpu_or_fails_when_required() {
    // The runtime used by the tests is the CPU build (or there is no GPU): CUDA
    // cannot be used.
    let cuda = Device::Cuda { device_id: 0 };
    let mut fallback = Extractor::open(
        bundled_model(),
        None,
        ExtractorOptions {
            device: cuda,
            ..ExtractorOptions::default()
        },
    )
    .expect("falls back");
    assert_eq!(fallback.provider(), "CPU");
    let input: Array4<f32> = read_npy(reference("fashion_vgg_input.npy")).expect("reference input");
    let expected: Array2<f32> =
        read_npy(reference("fashion_vgg_features.npy")).expect("reference features");
    let diff = max_abs_diff(
        &fallback.extract_tensor(input.view()).expect("runs"),
        &expected,
    );
    assert!(diff <= PARITY_TOLERANCE, "{diff}");

    let err = Extractor::open(
        bundled_model(),
        None,
        ExtractorOptions {
            device: cuda,
            require_device: true,
            ..ExtractorOptions::default()
        },
    )
    .expect_err("CUDA required");
    assert!(matches!(err, Error::Runtime(_)), "{err}");
    assert!(
        err.to_string().contains("CUDA requested but unavailable"),
        "{err}"
    );
}

#[test]
fn zero_batch_size_is_a_configuration_error() {
    let err = Extractor::open(
        bundled_model(),
        None,
        ExtractorOptions {
            batch_size: 0,
            ..ExtractorOptions::default()
        },
    )
    .expect_err("batch 0");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn torchvision_preset_shape_handling_on_a_small_graph() {
    // The torchvision preset's resize (shorter side, centre crop) applied to the
    // bundled 28×28 gray model: shorter side 32, crop 28.
    let spec = ModelSpec {
        height: Some(28),
        width: Some(28),
        channels: None,
        resize: Resize::ShorterThenCrop(32),
        mean: vec![0.2860],
        std: vec![0.3530],
        ..ModelSpec::preset("torchvision-vgg16").expect("preset exists")
    };
    let mut extractor =
        Extractor::open(bundled_model(), Some(spec), ExtractorOptions::default()).expect("opens");
    assert_eq!(extractor.spec().channels, Some(1));
    let wide =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(64, 32, image::Luma([90])));
    let small = ndarray::Array3::<u8>::from_elem((1, 28, 28), 90);
    let from_wide = extractor.extract_images(&[wide]).expect("extracts");
    let from_small = extractor.extract_gray(small.view()).expect("extracts");
    assert_eq!(from_wide, from_small);
}

/// A full-size VGG16 (e.g. from `models/export_vgg16.py`) loads and gives 4096-d
/// features with the torchvision preset.
#[test]
#[ignore = "needs a full VGG16 ONNX export (about 528 MB): set CONTINUAL_VGG16=/path/to/vgg16.onnx"]
fn full_vgg16_gives_4096_features() {
    let model = std::env::var_os("CONTINUAL_VGG16")
        .map(PathBuf::from)
        .expect("CONTINUAL_VGG16 names the model");
    let spec = ModelSpec::preset("torchvision-vgg16").expect("preset exists");
    let mut extractor =
        Extractor::open(&model, Some(spec), ExtractorOptions::default()).expect("opens");
    assert_eq!(extractor.dim(), 4096);
    let files = extractor
        .extract_files(&pngs("images_rgb")[..3], &mut no_progress())
        .expect("extracts");
    assert_eq!(files.features.dim(), (3, 4096));
    assert!(files.features.iter().all(|v| v.is_finite()));
}

//! Bad input gets a clear error naming what is wrong, never a panic and never an
//! allocation sized by a lying header: image files that are empty, truncated,
//! decompression bombs or of unusual channel counts; feature caches with
//! non-finite values, mismatched lengths, or empty or repeated class names; IDX
//! files that expand without end. Needs the ONNX Runtime library
//! (`scripts/setup.sh`).
//!
//! Covered elsewhere, not repeated here: a corrupt image, an ONNX file that is
//! not a model, a graph of the wrong rank or channel count, an output that is
//! not a vector (`tests/extract.rs`); a state file from a newer format version,
//! truncated or corrupted (`tests/persist.rs`); malformed IDX headers (unit
//! tests of `data::idx`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use continual::Error;
use continual::data::{CACHE_FORMAT, FeatureCache, read_idx_images};
use continual::extract::{Extractor, ExtractorOptions, MAX_IMAGE_SIDE};
use image::{DynamicImage, ImageBuffer, LumaA, Rgba};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bundled() -> MutexGuard<'static, Extractor> {
    static BUNDLED: OnceLock<Mutex<Extractor>> = OnceLock::new();
    BUNDLED
        .get_or_init(|| {
            let model = root().join("models/fashion-vgg.onnx");
            let extractor = Extractor::open(model, None, ExtractorOptions::default())
                .unwrap_or_else(|e| panic!("opening the bundled model: {e}"));
            Mutex::new(extractor)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error of extracting features from the one file `path`.
fn image_error(path: &Path) -> String {
    let err = bundled()
        .extract_files(&[path.to_path_buf()], &mut |_, _| {})
        .expect_err("a bad image is refused");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&*path.file_name().expect("name").to_string_lossy()),
        "the error names the file: {message}"
    );
    message
}

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320) as PNG chunks need it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A valid PNG header declaring an 8-bit gray image of `width × height`, followed
/// by a few bytes of compressed rows: a decompression bomb's first bytes.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // depth 8, gray, deflate, filter 0, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&vec![0u8; 1 << 16]).expect("compresses");
    png_chunk(&mut png, b"IDAT", &zlib.finish().expect("compresses"));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn crc_matches_the_png_specification_check_value() {
    // The standard check value of CRC-32/ISO-HDLC.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn empty_image_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("empty.png");
    std::fs::write(&path, b"").expect("writes");
    image_error(&path);
}

#[test]
fn truncated_image_files_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = std::fs::read(root().join("tests/data/images/04_4.png")).expect("fixture");
    for keep in [8, 33, good.len() / 2, good.len() - 13] {
        let path = dir.path().join(format!("cut_{keep}.png"));
        std::fs::write(&path, &good[..keep]).expect("writes");
        image_error(&path);
    }
}

#[test]
fn decompression_bomb_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 100,000 × 100,000 gray pixels would be 10 GB; the file is a few hundred bytes.
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, png_declaring(100_000, 100_000)).expect("writes");
    let started = Instant::now();
    let message = image_error(&path);
    assert!(message.contains("limit"), "{message}");
    assert!(started.elapsed().as_secs() < 5, "refused at once");

    // Within the side limit but over the allocation limit: 16,384² RGBA at 16 bits.
    let mut wide = png_declaring(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE);
    wide[24..26].copy_from_slice(&[16, 6]); // depth 16, RGBA; fix the CRC
    let crc = crc32(&wide[12..29]);
    wide[29..33].copy_from_slice(&crc.to_be_bytes());
    let path = dir.path().join("wide.png");
    std::fs::write(&path, wide).expect("writes");
    let message = image_error(&path);
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn images_with_alpha_or_16_bits_give_the_gray_features() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = root().join("tests/data/images/04_4.png");
    let gray = image::open(&source).expect("fixture").to_luma8();
    let (w, h) = gray.dimensions();
    let gray_alpha = ImageBuffer::from_fn(w, h, |x, y| LumaA([gray.get_pixel(x, y)[0], 90]));
    let rgba16 = ImageBuffer::from_fn(w, h, |x, y| {
        let v = u16::from(gray.get_pixel(x, y)[0]) * 257;
        Rgba([v, v, v, 65535])
    });
    let variants: Vec<(PathBuf, DynamicImage)> = vec![
        (
            dir.path().join("gray_alpha.png"),
            DynamicImage::ImageLumaA8(gray_alpha),
        ),
        (
            dir.path().join("rgba16.png"),
            DynamicImage::ImageRgba16(rgba16),
        ),
    ];
    let mut paths = vec![source];
    for (path, image) in &variants {
        image.save(path).expect("writes");
        paths.push(path.clone());
    }

    let features = bundled()
        .extract_files(&paths, &mut |_, _| {})
        .expect("two- and four-channel images are converted")
        .features;
    for (row, path) in paths.iter().enumerate().skip(1) {
        let diff = (&features.row(row) - &features.row(0))
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(diff < 1e-5, "{}: max difference {diff}", path.display());
    }
}

/// Writes a feature cache by hand, with whatever contents a test needs.
fn write_cache(path: &Path, features: &Array2<f32>, labels: &[i64], class_names: &[&str]) {
    let meta = serde_json::json!({
        "format": CACHE_FORMAT,
        "class_names": class_names,
        "paths": [],
        "model_sha256": "0",
        "spec": {},
    });
    let meta = Array1::from(serde_json::to_vec(&meta).expect("JSON"));
    let file = std::fs::File::create(path).expect("creates");
    let mut npz = NpzWriter::new(file);
    npz.add_array("features", features).expect("writes");
    npz.add_array("labels", &Array1::from(labels.to_vec()))
        .expect("writes");
    npz.add_array("split", &Array1::<u8>::zeros(labels.len()))
        .expect("writes");
    npz.add_array("meta", &meta).expect("writes");
    npz.finish().expect("writes");
}

/// Loads the cache and returns its error message, which must name the file.
fn cache_error(path: &Path) -> (Error, String) {
    let err = FeatureCache::load(path).expect_err("a bad cache is refused");
    let message = err.to_string();
    assert!(
        message.contains(&*path.to_string_lossy()),
        "the error names the file: {message}"
    );
    (err, message)
}

#[test]
fn a_good_hand_written_cache_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("good.npz");
    write_cache(&path, &Array2::ones((3, 4)), &[0, 1, 1], &["a", "b"]);
    let cache = FeatureCache::load(&path).expect("loads");
    assert_eq!(cache.class_names, ["a", "b"]);
}

#[test]
fn caches_with_nan_or_infinite_features_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, value) in [
        ("nan.npz", f32::NAN),
        ("inf.npz", f32::INFINITY),
        ("neg_inf.npz", f32::NEG_INFINITY),
    ] {
        let path = dir.path().join(name);
        let mut features = Array2::ones((3, 4));
        features[[2, 1]] = value;
        write_cache(&path, &features, &[0, 1, 1], &["a", "b"]);
        let (err, message) = cache_error(&path);
        match err {
            Error::NonFinite { row, col, .. } => assert_eq!((row, col), (2, 1), "{message}"),
            other => panic!("expected a non-finite error, got {other}"),
        }
    }
}

#[test]
fn caches_with_mismatched_dimensions_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rows.npz");
    write_cache(&path, &Array2::ones((3, 4)), &[0, 1], &["a", "b"]);
    let (err, message) = cache_error(&path);
    assert!(matches!(err, Error::Data { .. }), "{message}");
    assert!(message.contains("3 feature rows but 2 labels"), "{message}");

    let path = dir.path().join("label.npz");
    write_cache(&path, &Array2::ones((2, 4)), &[0, 5], &["a", "b"]);
    let (_, message) = cache_error(&path);
    assert!(
        message.contains("label 5 at row 1 has no class name"),
        "{message}"
    );

    // Features as a vector instead of a matrix.
    let path = dir.path().join("rank.npz");
    let file = std::fs::File::create(&path).expect("creates");
    let mut npz = NpzWriter::new(file);
    npz.add_array("features", &Array1::<f32>::ones(4))
        .expect("writes");
    npz.finish().expect("writes");
    let (err, message) = cache_error(&path);
    assert!(matches!(err, Error::Data { .. }), "{message}");
    assert!(message.contains("`features`"), "{message}");
}

#[test]
fn caches_with_empty_or_repeated_class_names_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("repeated.npz");
    write_cache(&path, &Array2::ones((2, 4)), &[0, 1], &["cat", "cat"]);
    let (err, message) = cache_error(&path);
    assert!(matches!(err, Error::Data { .. }), "{message}");
    assert!(message.contains("\"cat\" appears twice"), "{message}");

    let path = dir.path().join("empty_name.npz");
    write_cache(&path, &Array2::ones((2, 4)), &[0, 1], &["cat", ""]);
    let (err, message) = cache_error(&path);
    assert!(matches!(err, Error::Data { .. }), "{message}");
    assert!(message.contains("class name 1 is empty"), "{message}");
}

#[test]
fn gzipped_idx_that_expands_past_its_header_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bomb-idx3-ubyte.gz");
    // A header for 1 × 2 × 2 images, then 256 MiB of zeros (a 256 KiB file).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&[0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2])
        .expect("compresses");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).expect("compresses");
    }
    std::fs::write(&path, gz.finish().expect("compresses")).expect("writes");
    let started = Instant::now();
    let err = read_idx_images(&path).expect_err("too long");
    let message = err.to_string();
    assert!(matches!(err, Error::Data { .. }), "{message}");
    assert!(message.contains("bomb-idx3-ubyte.gz"), "{message}");
    assert!(message.contains("holds more"), "{message}");
    assert!(
        started.elapsed().as_secs() < 2,
        "stops after the declared size"
    );
}

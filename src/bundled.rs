//! Where the bundled model and data live in the source tree.
//!
//! The paths are fixed when the crate is compiled; a binary moved away from its
//! source tree passes its own `--model` and `--data` instead.

use std::path::PathBuf;

/// The bundled VGG-style Fashion-MNIST extractor (`models/fashion-vgg.onnx`).
pub fn model() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/fashion-vgg.onnx"
    ))
}

/// The bundled Fashion-MNIST subset (`data/fashion-mnist-subset`, gzipped IDX files).
pub fn data() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/fashion-mnist-subset"
    ))
}

/// Number of classes the bundled model was trained on (Fashion-MNIST classes 0–4),
/// the natural base step for a protocol on the bundled data.
pub const MODEL_BASE_CLASSES: usize = 5;

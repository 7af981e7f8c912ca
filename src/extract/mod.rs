//! The frozen half: an ONNX model on ONNX Runtime turns images into feature
//! vectors, `features: (n_images, dim)`.
//!
//! - [`ModelSpec`] says how to feed a model (input size, layout, colour order,
//!   normalisation) and which output is the feature; it is stored as JSON beside
//!   the model, with presets for the common VGG16 exports.
//! - [`Extractor`] opens a model on the CPU or CUDA execution provider and
//!   extracts features from decoded images, raw gray arrays, files, or an
//!   already preprocessed tensor `(n, C, H, W)` / `(n, H, W, C)`.
//! - The ONNX Runtime library is loaded at run time (see [`runtime`]):
//!   `scripts/setup.sh` installs it into the checkout.

mod extractor;
mod preprocess;
pub mod runtime;
mod spec;

pub use extractor::{
    Device, Extractor, ExtractorOptions, FileFeatures, MAX_IMAGE_ALLOC, MAX_IMAGE_SIDE,
};
pub use spec::{ColorOrder, Layout, ModelSpec, PRESETS, Resize};

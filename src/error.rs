//! The crate's one error type and its `Result` alias.
//!
//! Every failure a caller can cause (bad input, a bad file, a missing runtime) is
//! an [`Error`]; panics are reserved for broken internal invariants.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `continual`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array had the wrong shape for an operation.
    #[error("{op}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// The operation that checked the shape.
        op: &'static str,
        /// The shape it needed (`usize::MAX` where any size fits).
        expected: Vec<usize>,
        /// The shape it was given.
        got: Vec<usize>,
    },

    /// Input features contained NaN or an infinity.
    #[error("{what}: non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// What was being checked (e.g. `"features"`).
        what: String,
        /// Row (sample) of the first bad value.
        row: usize,
        /// Column (feature) of the first bad value.
        col: usize,
        /// The bad value itself.
        value: f32,
    },

    /// A learning step had no samples.
    #[error("empty step: {0}")]
    EmptyStep(String),

    /// Prediction was asked for before any class was learned.
    #[error("no class has been learned yet")]
    NoClasses,

    /// A class name the learner does not know.
    #[error("unknown class {0:?}")]
    UnknownClass(String),

    /// A label that cannot be used (empty, wrong count, ...).
    #[error("invalid label: {0}")]
    InvalidLabel(String),

    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A state file that cannot be read: truncated, corrupted, foreign, or from
    /// another format version.
    #[error("{}: {reason}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An image that cannot be decoded or used.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An ONNX model, or its spec, that cannot be used.
    #[error("{}: {reason}", path.display())]
    Model {
        /// The model (or spec) file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A data file (IDX, feature cache, image folder) that cannot be used.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The ONNX Runtime library could not be found or loaded.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// An error reported by ONNX Runtime.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

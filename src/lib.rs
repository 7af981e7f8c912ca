//! `continual`: class-incremental image learning on the device.
//!
//! A frozen network exported to ONNX turns images into feature vectors
//! ([`extract`]); a small fully-connected head written on `ndarray` ([`head`])
//! learns new classes step by step without forgetting old ones, trained with a
//! classification + distillation loss ([`loss`]) while rehearsing a bounded
//! memory of exemplars ([`memory`]). [`Learner`] ties these together.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod bundled;
pub mod data;
pub mod error;
pub mod extract;
pub mod head;
pub mod learner;
pub mod loss;
pub mod memory;
pub mod persist;
pub mod pipeline;
pub mod protocol;
pub mod stats;

pub use error::{Error, Result};

pub use learner::{Classifier, Learner, LearnerConfig, Prediction, StepReport};
pub use head::{OptimizerKind, Schedule};
pub use loss::LossKind;

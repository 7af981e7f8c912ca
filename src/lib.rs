//! `continual`: class-incremental image learning on the device.
//!
//! A frozen network exported to ONNX turns images into feature vectors
//! ([`extract`]); a small fully-connected head written on `ndarray` ([`head`])
//! learns new classes step by step without forgetting old ones, trained with a
//! classification + distillation loss ([`loss`]) while rehearsing a bounded
//! memory of exemplars ([`memory`]). [`Learner`] ties these together.
//!
//! # Example
//!
//! Learning two steps on feature vectors (here synthetic ones), predicting,
//! and saving and loading the learner:
//!
//! ```
//! use continual::{Classifier, Learner, LearnerConfig};
//! use ndarray::Array2;
//!
//! # fn main() -> continual::Result<()> {
//! // Two well-separated clusters per step in 16 dimensions: class c lives
//! // around the unit vector e_c.
//! let features = |classes: &[usize]| {
//!     let n = 20;
//!     let mut x = Array2::<f32>::zeros((classes.len() * n, 16));
//!     let mut labels = Vec::new();
//!     for (k, &c) in classes.iter().enumerate() {
//!         for i in 0..n {
//!             x[[k * n + i, c]] = 1.0;
//!             x[[k * n + i, (c + 1 + i % 5) % 16]] = 0.2;
//!             labels.push(format!("class-{c}"));
//!         }
//!     }
//!     (x, labels)
//! };
//!
//! let mut learner = Learner::new(16, LearnerConfig::default())?;
//! let (x, labels) = features(&[0, 1]);
//! learner.learn(x.view(), &labels, None)?;
//! let (x, labels) = features(&[2, 3]);
//! let report = learner.learn(x.view(), &labels, None)?;
//! assert_eq!(report.new_classes, ["class-2", "class-3"]);
//!
//! let (probe, _) = features(&[0, 3]);
//! let predictions = learner.predict(probe.view(), Classifier::Nme, 2)?;
//! assert_eq!(predictions[0].class, "class-0");
//! assert_eq!(predictions[20].class, "class-3");
//!
//! let path = std::env::temp_dir().join(format!("continual-doc-{}.state", std::process::id()));
//! learner.save(&path)?;
//! let loaded = Learner::load(&path)?;
//! assert_eq!(
//!     loaded.scores(probe.view(), Classifier::Head)?,
//!     learner.scores(probe.view(), Classifier::Head)?
//! );
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

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

pub use head::{OptimizerKind, Schedule};
pub use learner::{Classifier, Learner, LearnerConfig, Prediction, StepReport, Strategy};
pub use loss::LossKind;
pub use memory::Exemplar;

// The README's Rust examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

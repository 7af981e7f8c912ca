//! Data sources: class-per-folder image trees, IDX files (the MNIST family), and
//! feature caches.
//!
//! Images come as `(n, rows, cols)` 8-bit gray arrays (IDX) or as file paths with
//! class indices (folders); [`FeatureCache`] holds extracted
//! `features: (n, d)` with labels, split marks and provenance, saved as `.npz`.

mod cache;
mod folder;
mod idx;

pub use cache::{CACHE_FORMAT, FeatureCache, TEST, TRAIN};
pub use folder::{IMAGE_EXTENSIONS, ImageFolder, is_image_file, scan_image_folder};
pub use idx::{IdxDataset, load_idx_folder, read_idx_images, read_idx_labels};

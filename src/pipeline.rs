//! From a data path to labelled feature vectors: detection, extraction and splits.
//!
//! A data path is one of: a feature cache (`.npz`), a folder of IDX files (the MNIST
//! family), or a folder of images with one sub-folder per class — optionally split
//! into `train/` and `test/` sub-folders. Images are turned into features by an
//! [`Extractor`]; a cache already holds them.

use std::path::{Path, PathBuf};

use ndarray::Axis;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tracing::warn;

use crate::data::{FeatureCache, TEST, TRAIN, load_idx_folder, scan_image_folder};
use crate::extract::Extractor;
use crate::protocol::{FeatureData, Split};
use crate::{Error, Result};

/// What kind of data a path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A feature cache written by `continual extract`.
    Cache(PathBuf),
    /// A folder of IDX files (`train-images-idx3-ubyte[.gz]`, …).
    Idx(PathBuf),
    /// A folder of class sub-folders; `test` is set when the folder has `train/` and
    /// `test/` sub-folders.
    Images {
        /// Class sub-folders used for training (or everything, without a split).
        train: PathBuf,
        /// Class sub-folders used for testing.
        test: Option<PathBuf>,
    },
}

impl Source {
    /// Whether turning this source into features needs an extractor.
    pub fn needs_extractor(&self) -> bool {
        !matches!(self, Source::Cache(_))
    }
}

/// Decides what `path` holds.
///
/// # Errors
///
/// [`Error::Data`] when the path does not exist or holds none of the known layouts.
pub fn detect(path: &Path) -> Result<Source> {
    if path.is_file() {
        return if path.extension().is_some_and(|e| e == "npz") {
            Ok(Source::Cache(path.to_path_buf()))
        } else {
            Err(Error::Data {
                path: path.to_path_buf(),
                reason: "a data file must be a feature cache (.npz); images go in class \
                         sub-folders"
                    .into(),
            })
        };
    }
    if !path.is_dir() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: "no such file or folder".into(),
        });
    }
    let has = |name: &str| path.join(name).is_file() || path.join(format!("{name}.gz")).is_file();
    if has("train-images-idx3-ubyte") || has("t10k-images-idx3-ubyte") {
        return Ok(Source::Idx(path.to_path_buf()));
    }
    let (train, test) = (path.join("train"), path.join("test"));
    if train.is_dir() && test.is_dir() {
        return Ok(Source::Images {
            train,
            test: Some(test),
        });
    }
    Ok(Source::Images {
        train: path.to_path_buf(),
        test: None,
    })
}

/// Turns a source into a feature cache (features, labels, split, class names, paths).
///
/// `extractor` must be given unless the source is a cache. `progress(done, total)` is
/// called as images are extracted.
///
/// # Errors
///
/// Any error from reading the data or from extraction; [`Error::Config`] when an
/// extractor is needed and none was given.
pub fn features(
    source: &Source,
    extractor: Option<&mut Extractor>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FeatureCache> {
    if let Source::Cache(path) = source {
        return FeatureCache::load(path);
    }
    let Some(extractor) = extractor else {
        return Err(Error::Config(
            "extracting features from images needs a model".into(),
        ));
    };
    match source {
        Source::Cache(_) => unreachable!("handled above"),
        Source::Idx(dir) => FeatureCache::from_idx(extractor, &load_idx_folder(dir)?, progress),
        Source::Images { train, test } => {
            let folder = scan_image_folder(train)?;
            let (mut cache, mut skipped) =
                FeatureCache::from_image_folder(extractor, &folder, TRAIN, progress)?;
            if let Some(test) = test {
                let folder = scan_image_folder(test)?;
                let (test_cache, test_skipped) =
                    FeatureCache::from_image_folder(extractor, &folder, TEST, progress)?;
                cache = cache.concat(&test_cache)?;
                skipped.extend(test_skipped);
            }
            for (path, reason) in &skipped {
                warn!(path = %path.display(), reason, "skipped an image that cannot be used");
            }
            if !skipped.is_empty() {
                warn!(count = skipped.len(), "skipped images");
            }
            Ok(cache)
        }
    }
}

/// Splits a cache into train and test samples for a protocol run.
///
/// Samples marked [`TEST`] form the test split. When there are none, a seeded,
/// stratified `test_fraction` of each class is held out instead (at least one sample
/// of every class with two or more).
///
/// # Errors
///
/// [`Error::Config`] when `test_fraction` is outside `(0, 1)` and a split is needed.
pub fn train_test(cache: &FeatureCache, test_fraction: f64, seed: u64) -> Result<FeatureData> {
    let n = cache.labels.len();
    let mut is_test: Vec<bool> = cache.split.iter().map(|&s| s == TEST).collect();
    if !is_test.contains(&true) {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::Config(format!(
                "the data has no test split and the test fraction {test_fraction} is not in (0, 1)"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for class in 0..cache.class_names.len() {
            let mut rows: Vec<usize> = (0..n).filter(|&i| cache.labels[i] == class).collect();
            rows.shuffle(&mut rng);
            let held = if rows.len() < 2 {
                0
            } else {
                ((rows.len() as f64 * test_fraction).round() as usize).clamp(1, rows.len() - 1)
            };
            for &i in &rows[..held] {
                is_test[i] = true;
            }
        }
    }
    let pick = |test: bool| {
        let rows: Vec<usize> = (0..n).filter(|&i| is_test[i] == test).collect();
        Split {
            x: cache.features.select(Axis(0), &rows),
            labels: rows.iter().map(|&i| cache.labels[i]).collect(),
        }
    };
    Ok(FeatureData {
        class_names: cache.class_names.clone(),
        train: pick(false),
        test: pick(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn cache(labels: Vec<usize>, split: Vec<u8>) -> FeatureCache {
        let n = labels.len();
        FeatureCache {
            features: Array2::from_shape_fn((n, 2), |(i, j)| (i * 2 + j) as f32),
            labels,
            class_names: vec!["a".into(), "b".into()],
            paths: (0..n).map(|i| i.to_string()).collect(),
            split,
            model_sha256: String::new(),
            spec_json: String::new(),
        }
    }

    #[test]
    fn an_explicit_test_split_is_kept() {
        let data = train_test(&cache(vec![0, 1, 0, 1], vec![0, 0, 1, 1]), 0.5, 0).expect("valid");
        assert_eq!(data.train.labels, [0, 1]);
        assert_eq!(data.test.labels, [0, 1]);
        assert_eq!(data.test.x.row(0).to_vec(), [4.0, 5.0]);
    }

    #[test]
    fn without_a_split_each_class_is_held_out_by_fraction() {
        // 10 samples of a, 4 of b; a quarter held out: round(2.5) = 3 of a, 1 of b.
        let labels = [vec![0; 10], vec![1; 4]].concat();
        let data = train_test(&cache(labels, vec![0; 14]), 0.25, 7).expect("valid");
        let count = |s: &Split, c| s.labels.iter().filter(|&&l| l == c).count();
        assert_eq!((count(&data.test, 0), count(&data.test, 1)), (3, 1));
        assert_eq!((count(&data.train, 0), count(&data.train, 1)), (7, 3));
        assert!(train_test(&cache(vec![0, 1], vec![0, 0]), 1.0, 0).is_err());
    }
}

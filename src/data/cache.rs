//! Feature caches: extracted features saved once as `.npz`, reused for many
//! trainings.
//!
//! The file is a plain (uncompressed) NumPy `.npz` archive:
//!
//! | array      | dtype   | shape    | contents                                  |
//! |------------|---------|----------|-------------------------------------------|
//! | `features` | float32 | `(n, d)` | one feature vector per sample             |
//! | `labels`   | int64   | `(n,)`   | class index into `class_names`            |
//! | `split`    | uint8   | `(n,)`   | 0 = train, 1 = test                       |
//! | `meta`     | uint8   | `(m,)`   | UTF-8 JSON: `format`, `class_names`, `paths`, `model_sha256`, `spec` |
//!
//! From Python: `z = np.load(path); meta = json.loads(bytes(z["meta"]))`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis, concatenate};
use ndarray_npy::{NpzReader, NpzWriter};
use serde::{Deserialize, Serialize};

use super::folder::ImageFolder;
use super::idx::IdxDataset;
use crate::extract::Extractor;
use crate::{Error, Result};

/// The value of `meta.format` this version writes and reads.
pub const CACHE_FORMAT: &str = "continual-features-v1";

/// `split` value of a training sample.
pub const TRAIN: u8 = 0;
/// `split` value of a test sample.
pub const TEST: u8 = 1;

/// Images per [`Extractor::extract_gray`] call when caching IDX data, between
/// two progress reports.
const IDX_CHUNK: usize = 1024;

/// Features of a data set with their labels and provenance; see the module docs
/// for the file format.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureCache {
    /// `features: (n, d)`.
    pub features: Array2<f32>,
    /// `n` class indices into `class_names`.
    pub labels: Vec<usize>,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// `n` source paths (or `"train:<i>"`/`"test:<i>"` for IDX data), or none.
    pub paths: Vec<String>,
    /// `n` split marks, [`TRAIN`] or [`TEST`].
    pub split: Vec<u8>,
    /// SHA-256 (hex) of the model that made the features.
    pub model_sha256: String,
    /// The resolved model spec the features were made with, as JSON (compact,
    /// keys sorted, as [`load`](Self::load) gives it back).
    pub spec_json: String,
}

/// The JSON in the `meta` array.
#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    class_names: Vec<String>,
    paths: Vec<String>,
    model_sha256: String,
    spec: serde_json::Value,
}

impl FeatureCache {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// `true` when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// The samples of one split ([`TRAIN`] or [`TEST`]), in order.
    pub fn subset(&self, split: u8) -> FeatureCache {
        let rows: Vec<usize> = (0..self.len())
            .filter(|&i| self.split[i] == split)
            .collect();
        FeatureCache {
            features: self.features.select(Axis(0), &rows),
            labels: rows.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            paths: if self.paths.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&i| self.paths[i].clone()).collect()
            },
            split: vec![split; rows.len()],
            model_sha256: self.model_sha256.clone(),
            spec_json: self.spec_json.clone(),
        }
    }

    /// Extracts the features of an image folder; every sample gets `split`.
    ///
    /// Returns the cache and the files skipped as undecodable (only with
    /// `skip_bad_images` in the extractor's options; otherwise a bad file fails).
    ///
    /// # Errors
    ///
    /// As [`Extractor::extract_files`].
    pub fn from_image_folder(
        extractor: &mut Extractor,
        folder: &ImageFolder,
        split: u8,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(FeatureCache, Vec<(PathBuf, String)>)> {
        let paths = folder.paths();
        let extracted = extractor.extract_files(&paths, progress)?;
        let cache = FeatureCache {
            labels: extracted.kept.iter().map(|&i| folder.items[i].1).collect(),
            paths: extracted
                .kept
                .iter()
                .map(|&i| paths[i].to_string_lossy().into_owned())
                .collect(),
            split: vec![split; extracted.kept.len()],
            features: extracted.features,
            class_names: folder.class_names.clone(),
            model_sha256: extractor.model_sha256().to_string(),
            spec_json: spec_json(extractor),
        };
        Ok((cache, extracted.skipped))
    }

    /// Extracts the features of both splits of an IDX data set, training images
    /// first; paths are `"train:<index>"` and `"test:<index>"`.
    ///
    /// `progress(done, total)` counts images over both splits.
    ///
    /// # Errors
    ///
    /// As [`Extractor::extract_gray`].
    pub fn from_idx(
        extractor: &mut Extractor,
        data: &IdxDataset,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FeatureCache> {
        let n_train = data.train_labels.len();
        let total = n_train + data.test_labels.len();
        let mut parts = Vec::new();
        let mut done = 0;
        for images in [&data.train_images, &data.test_images] {
            for chunk in images.axis_chunks_iter(Axis(0), IDX_CHUNK) {
                parts.push(extractor.extract_gray(chunk)?);
                done += chunk.len_of(Axis(0));
                progress(done, total);
            }
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let features = if views.is_empty() {
            Array2::zeros((0, extractor.dim()))
        } else {
            concatenate(Axis(0), &views).expect("every part has the extractor's dim")
        };

        let labels = data
            .train_labels
            .iter()
            .chain(&data.test_labels)
            .map(|&l| usize::from(l))
            .collect();
        let paths = (0..n_train)
            .map(|i| format!("train:{i}"))
            .chain((0..data.test_labels.len()).map(|i| format!("test:{i}")))
            .collect();
        let mut split = vec![TRAIN; n_train];
        split.resize(total, TEST);
        Ok(FeatureCache {
            features,
            labels,
            class_names: data.class_names.clone(),
            paths,
            split,
            model_sha256: extractor.model_sha256().to_string(),
            spec_json: spec_json(extractor),
        })
    }

    /// Refuses to mix features made by another model, with another spec, or of
    /// another dimension.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] saying what differs.
    pub fn check_compatible(&self, other: &FeatureCache) -> Result<()> {
        let refuse = |reason: String| Error::Data {
            path: PathBuf::from("feature caches"),
            reason,
        };
        if self.model_sha256 != other.model_sha256 {
            return Err(refuse(format!(
                "made with different models (sha256 {} vs {})",
                self.model_sha256, other.model_sha256
            )));
        }
        let spec = |json: &str| serde_json::from_str::<serde_json::Value>(json).ok();
        if spec(&self.spec_json) != spec(&other.spec_json) || spec(&self.spec_json).is_none() {
            return Err(refuse(format!(
                "made with different model specs ({} vs {})",
                compact(&self.spec_json),
                compact(&other.spec_json)
            )));
        }
        if self.dim() != other.dim() {
            return Err(refuse(format!(
                "features of dimension {} and {}",
                self.dim(),
                other.dim()
            )));
        }
        Ok(())
    }

    /// `self`'s samples followed by `other`'s. Classes are matched by name:
    /// `other`'s labels are renumbered, and its new classes appended.
    ///
    /// # Errors
    ///
    /// As [`check_compatible`](Self::check_compatible).
    pub fn concat(&self, other: &FeatureCache) -> Result<FeatureCache> {
        self.check_compatible(other)?;
        let mut class_names = self.class_names.clone();
        let remap: Vec<usize> = other
            .class_names
            .iter()
            .map(|name| match class_names.iter().position(|n| n == name) {
                Some(index) => index,
                None => {
                    class_names.push(name.clone());
                    class_names.len() - 1
                }
            })
            .collect();
        let paths = if self.paths.is_empty() && other.paths.is_empty() {
            Vec::new()
        } else {
            let or_blank = |cache: &FeatureCache| {
                if cache.paths.is_empty() {
                    vec![String::new(); cache.len()]
                } else {
                    cache.paths.clone()
                }
            };
            [or_blank(self), or_blank(other)].concat()
        };
        Ok(FeatureCache {
            features: concatenate(Axis(0), &[self.features.view(), other.features.view()])
                .expect("check_compatible checked the dimensions"),
            labels: self
                .labels
                .iter()
                .copied()
                .chain(other.labels.iter().map(|&l| remap[l]))
                .collect(),
            class_names,
            paths,
            split: [self.split.as_slice(), &other.split].concat(),
            model_sha256: self.model_sha256.clone(),
            spec_json: self.spec_json.clone(),
        })
    }

    /// Writes the cache to `path` atomically, as state files are written (see
    /// [`crate::persist`]), so a reader never sees a partial file.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] when the cache is inconsistent (see [`load`](Self::load));
    /// [`Error::NonFinite`] for NaN or infinite features; [`Error::Io`] when
    /// writing fails.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate(path)?;
        let meta = Meta {
            format: CACHE_FORMAT.to_string(),
            class_names: self.class_names.clone(),
            paths: self.paths.clone(),
            model_sha256: self.model_sha256.clone(),
            spec: serde_json::from_str(&self.spec_json).map_err(|e| Error::Data {
                path: path.to_path_buf(),
                reason: format!("spec_json is not JSON: {e}"),
            })?,
        };
        let meta = serde_json::to_vec(&meta).expect("the metadata serialises to JSON");
        let labels: Array1<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let split = Array1::from(self.split.clone());

        if path.file_name().is_none() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                reason: "not a file path".into(),
            });
        }
        // Built in memory, then written as state files are (`persist::write_atomic`):
        // a crash leaves the old cache or the new one, never a torn one.
        let encode = || -> std::result::Result<Vec<u8>, ndarray_npy::WriteNpzError> {
            let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
            npz.add_array("features", &self.features)?;
            npz.add_array("labels", &labels)?;
            npz.add_array("split", &split)?;
            npz.add_array("meta", &Array1::from(meta.clone()))?;
            Ok(npz.finish()?.into_inner())
        };
        let bytes = encode().map_err(|e| Error::Data {
            path: path.to_path_buf(),
            reason: format!("cannot encode the cache: {e}"),
        })?;
        crate::persist::write_atomic(path, &bytes)
    }

    /// Reads a cache written by [`save`](Self::save) (or by numpy in the same
    /// layout) and checks it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be opened; [`Error::Data`] naming the
    /// file when it is not a feature cache of this format, or its arrays disagree
    /// in length, or a class name is empty or repeated, or a label has no class
    /// name; [`Error::NonFinite`] (naming the file) for NaN or infinite features.
    pub fn load(path: &Path) -> Result<FeatureCache> {
        let bad = |reason: String| Error::Data {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut npz = NpzReader::new(file).map_err(|e| bad(format!("not an .npz file: {e}")))?;
        let features: Array2<f32> = read_array(&mut npz, "features", path)?;
        let labels: Array1<i64> = read_array(&mut npz, "labels", path)?;
        let split: Array1<u8> = read_array(&mut npz, "split", path)?;
        let meta: Array1<u8> = read_array(&mut npz, "meta", path)?;

        let meta: Meta = serde_json::from_slice(&meta.to_vec())
            .map_err(|e| bad(format!("`meta` is not the expected JSON: {e}")))?;
        if meta.format != CACHE_FORMAT {
            return Err(bad(format!(
                "format {:?}, this version reads {CACHE_FORMAT:?}",
                meta.format
            )));
        }
        let labels = labels
            .iter()
            .map(|&l| usize::try_from(l).map_err(|_| bad(format!("negative label {l}"))))
            .collect::<Result<Vec<usize>>>()?;
        let cache = FeatureCache {
            features,
            labels,
            class_names: meta.class_names,
            paths: meta.paths,
            split: split.to_vec(),
            model_sha256: meta.model_sha256,
            spec_json: serde_json::to_string(&meta.spec).expect("a JSON value serialises"),
        };
        cache.validate(path)?;
        Ok(cache)
    }

    /// Checks that lengths agree, class names are non-empty and distinct, labels
    /// name classes, splits are 0 or 1, and features are finite; errors name `path`.
    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Data {
            path: path.to_path_buf(),
            reason,
        };
        let n = self.len();
        if self.labels.len() != n || self.split.len() != n {
            return Err(bad(format!(
                "{n} feature rows but {} labels and {} split marks",
                self.labels.len(),
                self.split.len()
            )));
        }
        if !self.paths.is_empty() && self.paths.len() != n {
            return Err(bad(format!(
                "{n} feature rows but {} paths",
                self.paths.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.class_names.len());
        for (index, name) in self.class_names.iter().enumerate() {
            if name.is_empty() {
                return Err(bad(format!("class name {index} is empty")));
            }
            if !seen.insert(name.as_str()) {
                return Err(bad(format!(
                    "class name {name:?} appears twice (again at {index})"
                )));
            }
        }
        if let Some((row, &label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l >= self.class_names.len())
        {
            return Err(bad(format!(
                "label {label} at row {row} has no class name ({} classes)",
                self.class_names.len()
            )));
        }
        if let Some((row, &mark)) = self.split.iter().enumerate().find(|&(_, &s)| s > TEST) {
            return Err(bad(format!(
                "split mark {mark} at row {row} is neither 0 nor 1"
            )));
        }
        if let Some(((row, col), &value)) =
            self.features.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(Error::NonFinite {
                what: format!("{}: features", path.display()),
                row,
                col,
                value,
            });
        }
        Ok(())
    }
}

/// The extractor's resolved spec as compact JSON with sorted keys: the form
/// [`FeatureCache::load`] gives back, so that a saved and reloaded cache compares
/// equal.
fn spec_json(extractor: &Extractor) -> String {
    // Through the text, not `serde_json::to_value`: that widens each f32 to an
    // f64 and writes 0.286 as 0.28600001335144043.
    serde_json::from_str::<serde_json::Value>(&extractor.spec().to_json())
        .map(|value| value.to_string())
        .expect("a model spec's JSON parses")
}

/// One array of a feature cache, by name; errors name the file and the array.
fn read_array<T, D>(
    npz: &mut NpzReader<std::fs::File>,
    name: &str,
    path: &Path,
) -> Result<ndarray::Array<T, D>>
where
    T: ndarray_npy::ReadableElement,
    D: ndarray::Dimension,
{
    npz.by_name(name).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("cannot read array `{name}` of a feature cache: {e}"),
    })
}

/// JSON text without its whitespace, for messages.
fn compact(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| json.to_string())
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    fn cache() -> FeatureCache {
        FeatureCache {
            features: array![[1.0, -2.5, 0.0], [3.25, 4.0, 1e-8]],
            labels: vec![1, 0],
            class_names: vec!["Coat".into(), "T-shirt/top".into()],
            paths: vec!["b/1.png".into(), "a/ü.png".into()],
            split: vec![TRAIN, TEST],
            model_sha256: "ab".repeat(32),
            spec_json: r#"{"height": 28, "width": 28}"#.into(),
        }
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("features.npz");
        let original = cache();
        original.save(&path).expect("saves");
        let loaded = FeatureCache::load(&path).expect("loads");
        assert_eq!(loaded.features, original.features);
        assert_eq!(loaded.labels, original.labels);
        assert_eq!(loaded.class_names, original.class_names);
        assert_eq!(loaded.paths, original.paths);
        assert_eq!(loaded.split, original.split);
        assert_eq!(loaded.model_sha256, original.model_sha256);
        loaded
            .check_compatible(&original)
            .expect("same model and spec");
        // Only the file itself is left: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn inconsistent_caches_are_refused_on_save() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.npz");
        let mut bad = cache();
        bad.labels[0] = 2;
        let err = bad.save(&path).expect_err("label without a class");
        assert!(
            err.to_string()
                .contains("label 2 at row 0 has no class name"),
            "{err}"
        );

        let mut bad = cache();
        bad.features[[1, 2]] = f32::NAN;
        match bad.save(&path).expect_err("NaN") {
            Error::NonFinite { row, col, .. } => assert_eq!((row, col), (1, 2)),
            other => panic!("expected NonFinite, got {other}"),
        }

        let mut bad = cache();
        bad.split.pop();
        assert!(bad.save(&path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn other_model_or_spec_is_refused() {
        let base = cache();
        let mut other_model = cache();
        other_model.model_sha256 = "cd".repeat(32);
        let err = base
            .check_compatible(&other_model)
            .expect_err("other model");
        assert!(err.to_string().contains("different models"), "{err}");

        let mut other_spec = cache();
        other_spec.spec_json = r#"{"height": 32, "width": 32}"#.into();
        let err = base.concat(&other_spec).expect_err("other spec");
        assert!(err.to_string().contains("different model specs"), "{err}");

        // Whitespace and key order do not matter.
        let mut same_spec = cache();
        same_spec.spec_json = r#"{"width":28,"height":28}"#.into();
        base.check_compatible(&same_spec).expect("same spec");
    }

    #[test]
    fn concat_matches_classes_by_name_and_subset_splits() {
        let base = cache();
        let mut other = cache();
        other.class_names = vec!["T-shirt/top".into(), "Bag".into()];
        other.labels = vec![0, 1];
        let both = base.concat(&other).expect("compatible");
        assert_eq!(both.class_names, ["Coat", "T-shirt/top", "Bag"]);
        assert_eq!(both.labels, [1, 0, 1, 2]);
        assert_eq!(both.len(), 4);
        assert_eq!(both.split, [TRAIN, TEST, TRAIN, TEST]);

        let test = both.subset(TEST);
        assert_eq!(test.labels, [0, 2]);
        assert_eq!(test.paths, ["a/ü.png", "a/ü.png"]);
        assert_eq!(test.features.row(1), both.features.row(3));
    }

    #[test]
    fn not_a_cache_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("junk.npz");
        std::fs::write(&path, b"junk").expect("write");
        let err = FeatureCache::load(&path).expect_err("junk");
        assert!(
            matches!(err, Error::Data { .. }) && err.to_string().contains("junk.npz"),
            "{err}"
        );
    }
}

//! IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.
//!
//! Layout (big-endian): two zero bytes, an element-type byte (`0x08`: unsigned
//! byte, the only type read here), the number of dimensions, one `u32` per
//! dimension, then the values in row-major order. Images are `(n, rows, cols)`,
//! labels `(n,)`.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::Array3;

use crate::{Error, Result};

/// Element-type byte of unsigned 8-bit values.
const UBYTE: u8 = 0x08;

/// Reads IDX images `(n, rows, cols)` of unsigned bytes.
///
/// The file may be gzipped (recognised by its magic bytes `1f 8b`, not by the
/// name).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read; [`Error::Data`] naming the file
/// when it is not valid gzip, not IDX, not 3-dimensional unsigned bytes, or
/// shorter or longer than its header says.
pub fn read_idx_images(path: &Path) -> Result<Array3<u8>> {
    let (dims, values) = read_idx(path, 3)?;
    // The length matches the dimensions, but an empty axis beside huge ones (found
    // by fuzzing: dims [0, 2³²−1, 2³²−253]) still has no array shape: refuse it.
    Array3::from_shape_vec((dims[0], dims[1], dims[2]), values).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("IDX dimensions {dims:?} do not form an array: {e}"),
    })
}

/// Reads IDX labels `(n,)` of unsigned bytes, gzipped or not.
///
/// # Errors
///
/// As [`read_idx_images`], for a 1-dimensional file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    read_idx(path, 1).map(|(_, values)| values)
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions; returns the
/// dimensions and the values.
fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |reason: String| Error::Data {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut file = std::io::BufReader::new(file);
    let gzipped = std::io::BufRead::fill_buf(&mut file)
        .map_err(|e| Error::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // Errors while reading a gzipped file are the file's fault, not the disk's.
    let read_error = |e: std::io::Error| {
        if gzipped {
            bad(format!("not a valid gzip file: {e}"))
        } else {
            Error::io(path, e)
        }
    };

    // The header first, then no more values than it declares (plus one, to tell a
    // longer file): a small gzip stream that expands without end cannot exhaust
    // memory, and no buffer is sized from the header before the data is there.
    let mut head = Vec::with_capacity(4 + 4 * rank);
    (&mut reader)
        .take(4)
        .read_to_end(&mut head)
        .map_err(read_error)?;
    if head.len() < 4 || head[0] != 0 || head[1] != 0 {
        return Err(bad(
            "not an IDX file (it must start with two zero bytes)".into()
        ));
    }
    if head[2] != UBYTE {
        return Err(bad(format!(
            "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            head[2]
        )));
    }
    let got_rank = usize::from(head[3]);
    if got_rank != rank {
        let what = if rank == 3 {
            "images (n, rows, cols)"
        } else {
            "labels (n)"
        };
        return Err(bad(format!(
            "IDX file has {got_rank} dimensions; {what} need {rank}"
        )));
    }
    let header = 4 + 4 * rank;
    (&mut reader)
        .take(4 * rank as u64)
        .read_to_end(&mut head)
        .map_err(read_error)?;
    if head.len() < header {
        return Err(bad(format!(
            "truncated IDX header ({} bytes, {header} needed)",
            head.len()
        )));
    }
    let dims: Vec<usize> = head[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n < usize::MAX)
        .ok_or_else(|| bad(format!("IDX dimensions {dims:?} overflow")))?;
    let mut values = Vec::new();
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut values)
        .map_err(read_error)?;
    let got = values.len();
    if got != expected {
        let got = if got > expected {
            "more".to_string()
        } else {
            got.to_string()
        };
        return Err(bad(format!(
            "IDX header says {dims:?} = {expected} values, the file holds {got}"
        )));
    }
    Ok((dims, values))
}

/// A data set in IDX files: images `(n, rows, cols)` and labels `(n,)` for a
/// training and a test split.
#[derive(Clone, Debug)]
pub struct IdxDataset {
    /// `(n_train, rows, cols)` gray pixels.
    pub train_images: Array3<u8>,
    /// `n_train` labels, each `< class_names.len()`.
    pub train_labels: Vec<u8>,
    /// `(n_test, rows, cols)` gray pixels.
    pub test_images: Array3<u8>,
    /// `n_test` labels, each `< class_names.len()`.
    pub test_labels: Vec<u8>,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

/// Loads a folder in the MNIST layout: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`,
/// each optionally ending in `.gz` (as Debian's `dataset-fashion-mnist` installs
/// them under `/usr/share/datasets/fashion-mnist/`).
///
/// Class names come from `classes.txt` (one a line, in label order) when
/// present, else they are `"0"`, `"1"`, … up to the largest label.
///
/// # Errors
///
/// [`Error::Data`] naming the file or folder when a file is missing or invalid,
/// when images and labels disagree in number, when the splits have different
/// image sizes, or when a label has no class name; [`Error::Io`] on read errors.
pub fn load_idx_folder(dir: &Path) -> Result<IdxDataset> {
    let find = |stem: &str| -> Result<PathBuf> {
        [dir.join(format!("{stem}.gz")), dir.join(stem)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| Error::Data {
                path: dir.to_path_buf(),
                reason: format!("no {stem}[.gz] in this folder"),
            })
    };
    let split = |prefix: &str| -> Result<(Array3<u8>, Vec<u8>)> {
        let images_path = find(&format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find(&format!("{prefix}-labels-idx1-ubyte"))?;
        let images = read_idx_images(&images_path)?;
        let labels = read_idx_labels(&labels_path)?;
        if labels.len() != images.len_of(ndarray::Axis(0)) {
            return Err(Error::Data {
                path: labels_path,
                reason: format!(
                    "{} labels for {} images in {}",
                    labels.len(),
                    images.len_of(ndarray::Axis(0)),
                    images_path.display()
                ),
            });
        }
        Ok((images, labels))
    };
    let (train_images, train_labels) = split("train")?;
    let (test_images, test_labels) = split("t10k")?;
    if train_images.shape()[1..] != test_images.shape()[1..] {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            reason: format!(
                "train images are {:?} but test images are {:?}",
                &train_images.shape()[1..],
                &test_images.shape()[1..]
            ),
        });
    }

    let max_label = train_labels.iter().chain(&test_labels).copied().max();
    let classes_path = dir.join("classes.txt");
    let class_names: Vec<String> = if classes_path.is_file() {
        let text =
            std::fs::read_to_string(&classes_path).map_err(|e| Error::io(&classes_path, e))?;
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(String::from)
            .collect()
    } else {
        (0..max_label.map_or(0, |m| usize::from(m) + 1))
            .map(|i| i.to_string())
            .collect()
    };
    if let Some(max) = max_label
        && usize::from(max) >= class_names.len()
    {
        return Err(Error::Data {
            path: classes_path,
            reason: format!(
                "label {max} has no class name ({} names)",
                class_names.len()
            ),
        });
    }

    Ok(IdxDataset {
        train_images,
        train_labels,
        test_images,
        test_labels,
        class_names,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(values);
        bytes
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("write to memory");
        encoder.finish().expect("finish in memory")
    }

    #[test]
    fn plain_and_gzipped_read_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let values: Vec<u8> = (0..12).collect();
        let raw = idx(&[2, 2, 3], &values);
        std::fs::write(dir.path().join("plain"), &raw).expect("write");
        // A misleading name: detection is by content.
        std::fs::write(dir.path().join("zipped.idx"), gz(&raw)).expect("write");

        let plain = read_idx_images(&dir.path().join("plain")).expect("valid");
        let zipped = read_idx_images(&dir.path().join("zipped.idx")).expect("valid");
        assert_eq!(plain, zipped);
        assert_eq!(plain.dim(), (2, 2, 3));
        assert_eq!(plain[[1, 0, 2]], 8);
    }

    #[test]
    fn malformed_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("short", idx(&[2, 2, 2], &[0; 7]), "holds 7"),
            ("long", idx(&[1, 2, 2], &[0; 5]), "holds more"),
            ("rank", idx(&[4], &[0; 4]), "1 dimensions"),
            ("type", vec![0, 0, 0x0d, 3, 0, 0, 0, 0], "0x0d"),
            ("magic", b"PK\x03\x04 not idx".to_vec(), "not an IDX file"),
            ("header", vec![0, 0, UBYTE, 3, 0, 0], "truncated"),
            ("badgz", vec![0x1f, 0x8b, 8, 0, 1, 2, 3], "gzip"),
        ];
        for (name, bytes, needle) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let err = read_idx_images(&path).expect_err(name);
            let message = err.to_string();
            assert!(matches!(err, Error::Data { .. }), "{name}: {message}");
            assert!(message.contains(name), "{name}: {message}");
            assert!(message.contains(needle), "{name}: {message}");
        }
        let missing = read_idx_labels(&dir.path().join("missing")).expect_err("missing");
        assert!(matches!(missing, Error::Io { .. }), "{missing}");
    }

    #[test]
    fn folder_with_default_class_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, bytes: Vec<u8>| {
            std::fs::write(dir.path().join(name), bytes).expect("write")
        };
        write("train-images-idx3-ubyte", idx(&[3, 1, 2], &[0; 6]));
        write("train-labels-idx1-ubyte.gz", gz(&idx(&[3], &[0, 4, 2])));
        write("t10k-images-idx3-ubyte.gz", gz(&idx(&[1, 1, 2], &[9, 9])));
        write("t10k-labels-idx1-ubyte", idx(&[1], &[1]));

        let data = load_idx_folder(dir.path()).expect("valid folder");
        assert_eq!(data.class_names, ["0", "1", "2", "3", "4"]);
        assert_eq!(data.train_labels, [0, 4, 2]);
        assert_eq!(data.test_images.dim(), (1, 1, 2));

        write("classes.txt", b"a\nb\n".to_vec());
        let err = load_idx_folder(dir.path()).expect_err("label 4 has no name");
        assert!(
            err.to_string().contains("label 4 has no class name"),
            "{err}"
        );

        write("t10k-labels-idx1-ubyte", idx(&[2], &[1, 1]));
        std::fs::remove_file(dir.path().join("classes.txt")).expect("remove");
        let err = load_idx_folder(dir.path()).expect_err("2 labels, 1 image");
        assert!(err.to_string().contains("2 labels for 1 images"), "{err}");
    }
}

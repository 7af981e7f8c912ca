//! The fuzz targets' seed corpus and every input that once crashed them
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`), fed to the same
//! functions as `cargo fuzz` does: each must give an answer or an error, never a
//! panic. Fuzzing itself runs outside `cargo test` (see the README).

use std::path::{Path, PathBuf};

use continual::Learner;
use continual::data::{FeatureCache, read_idx_images, read_idx_labels};
use continual::persist::{FORMAT_VERSION, MAGIC};
use sha2::{Digest, Sha256};

/// Every file under `fuzz/corpus/<target>` and `fuzz/regressions/<target>`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("entry").path()));
    }
    files.sort();
    files
}

#[test]
fn state_inputs_decode_or_fail_cleanly() {
    let files = inputs("load_state");
    assert!(files.len() >= 2, "the seed corpus is there");
    let mut loaded = 0;
    for file in files {
        let data = std::fs::read(&file).expect("reads");
        // As the fuzz target: the bytes as they are, then framed as a valid payload.
        let raw = Learner::decode(&file, &data);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
        framed.extend_from_slice(&Sha256::digest(&data));
        framed.extend_from_slice(&data);
        let payload = Learner::decode(&file, &framed);
        loaded += usize::from(raw.is_ok()) + usize::from(payload.is_ok());
    }
    assert!(loaded >= 2, "the golden seeds decode both ways");
}

#[test]
fn cache_inputs_load_or_fail_cleanly() {
    let files = inputs("load_cache");
    assert!(!files.is_empty(), "the seed corpus is there");
    for file in files {
        let _ = FeatureCache::load(&file);
    }
}

#[test]
fn idx_inputs_parse_or_fail_cleanly() {
    let files = inputs("parse_idx");
    assert!(!files.is_empty(), "the seed corpus is there");
    for file in files {
        let _ = read_idx_images(&file);
        let _ = read_idx_labels(&file);
    }
}

/// Found by `cargo fuzz run load_state`: a 63-byte payload whose class-name
/// length prefix claims 5·10¹⁷ bytes aborted the process on the allocation.
#[test]
fn forged_string_length_is_refused_not_allocated() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/load_state/string_length_prefix_oom");
    let payload = std::fs::read(&file).expect("reads");
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    framed.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    framed.extend_from_slice(&Sha256::digest(&payload));
    framed.extend_from_slice(&payload);
    let err = Learner::decode(&file, &framed).expect_err("refused");
    assert!(err.to_string().contains("cannot decode the state"), "{err}");
}

/// Found by `cargo fuzz run parse_idx`: an image file whose header declares
/// dimensions [0, 2³²−1, 2³²−253] holds zero values, as its header says, yet has no
/// array shape; reading it panicked instead of naming the file.
#[test]
fn an_empty_axis_beside_huge_ones_is_refused_not_a_panic() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/parse_idx/empty_axis_beside_huge_ones");
    let err = read_idx_images(&file).expect_err("refused");
    assert!(
        matches!(&err, continual::Error::Data { path, reason }
            if path == &file && reason.contains("do not form an array")),
        "{err}"
    );
}

//! Versioned, checksummed, atomic state files.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `b"CONTINUL"` |
//! | 4 | format version, `u32` (this build writes and reads [`FORMAT_VERSION`]) |
//! | 8 | payload length in bytes, `u64` |
//! | 32 | SHA-256 of the payload |
//! | … | payload: the state, serde + bincode 2 (standard configuration) |
//!
//! The header lets the codec change later behind a new version number, and the
//! checksum turns any corruption into a clear error before decoding begins.
//!
//! # Crashes
//!
//! [`save`] writes `.<name>.tmp-<pid>` beside the target, flushes it to disk,
//! renames it over the target and flushes the directory, so the file under the
//! real name is always a complete state: the old one or the new one. A crash
//! before the rename leaves the temporary file behind. [`load`] never reads
//! temporary files, so a stale one is ignored; the next [`save`] to the same
//! path removes every `.<name>.tmp-*` it finds before writing its own. Two
//! processes saving to the same path at the same time are therefore not
//! supported: one of them may fail with an I/O error (the file under the real
//! name stays complete).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The first eight bytes of every state file.
pub const MAGIC: [u8; 8] = *b"CONTINUL";

/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Header size in bytes: magic, version, payload length, checksum.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// Encodes `state` into the bytes of a state file (header and payload).
///
/// # Errors
///
/// [`Error::StateFile`] (naming `path`) if the codec fails.
pub fn encode<T: Serialize>(path: &Path, state: &T) -> Result<Vec<u8>> {
    let payload = bincode::serde::encode_to_vec(state, bincode::config::standard())
        .map_err(|e| state_error(path, format!("cannot encode the state: {e}")))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Decodes the bytes of a state file read from `path`.
///
/// # Errors
///
/// [`Error::StateFile`] when the magic is wrong, the version unsupported, the
/// file shorter or longer than its header says, the checksum wrong, or the
/// payload undecodable.
pub fn decode<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(state_error(path, "not a continual state file (bad magic)"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(state_error(
            path,
            format!(
                "truncated: the header needs {HEADER_LEN} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > FORMAT_VERSION {
        return Err(state_error(
            path,
            format!(
                "format version {version} is newer than this build supports ({FORMAT_VERSION})"
            ),
        ));
    }
    if version != FORMAT_VERSION {
        return Err(state_error(
            path,
            format!(
                "format version {version} is not supported (this build reads {FORMAT_VERSION})"
            ),
        ));
    }
    let declared = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if declared != payload.len() as u64 {
        let what = if (payload.len() as u64) < declared {
            "truncated"
        } else {
            "trailing data"
        };
        return Err(state_error(
            path,
            format!(
                "{what}: header says {declared} bytes of payload, file has {}",
                payload.len()
            ),
        ));
    }
    if Sha256::digest(payload).as_slice() != &bytes[20..HEADER_LEN] {
        return Err(state_error(
            path,
            "checksum mismatch: the file is corrupted",
        ));
    }
    let (state, used) = decode_payload(payload)
        .map_err(|e| state_error(path, format!("cannot decode the state: {e}")))?;
    if used != payload.len() {
        return Err(state_error(path, "payload has trailing bytes"));
    }
    Ok(state)
}

/// Decodes a payload, refusing any string or byte buffer whose declared length
/// would take the total past a limit of at most 4× the payload's own length
/// (payloads up to 1 GiB; larger ones are decoded without a limit).
///
/// bincode allocates a string's bytes from its length prefix before reading them;
/// without a limit a forged prefix (found by fuzzing: a 63-byte payload claiming
/// 5·10¹⁷ bytes) aborts the process on a failed allocation. Every byte a valid
/// payload's strings hold is a byte of the payload, so a limit at the payload's
/// length never refuses one. bincode fixes the limit at compile time, hence the
/// buckets.
fn decode_payload<T: DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! within {
        ($limit:expr) => {
            bincode::serde::decode_from_slice(
                payload,
                bincode::config::standard().with_limit::<{ $limit }>(),
            )
        };
    }
    match payload.len() {
        n if n <= 1 << 12 => within!(1 << 12),
        n if n <= 1 << 14 => within!(1 << 14),
        n if n <= 1 << 16 => within!(1 << 16),
        n if n <= 1 << 18 => within!(1 << 18),
        n if n <= 1 << 20 => within!(1 << 20),
        n if n <= 1 << 22 => within!(1 << 22),
        n if n <= 1 << 24 => within!(1 << 24),
        n if n <= 1 << 26 => within!(1 << 26),
        n if n <= 1 << 28 => within!(1 << 28),
        n if n <= 1 << 30 => within!(1 << 30),
        // Past 1 GiB the limit is lifted; state files are far smaller.
        _ => within!(usize::MAX),
    }
}

/// Writes `state` to `path` atomically: a temporary file in the same directory
/// is written, flushed to disk and renamed over `path`, so a crash leaves either
/// the old file or the new one, never a torn one.
///
/// # Errors
///
/// [`Error::Io`] if any file operation fails (the temporary file is removed),
/// [`Error::StateFile`] if encoding fails.
pub fn save<T: Serialize>(path: &Path, state: &T) -> Result<()> {
    let bytes = encode(path, state)?;
    write_atomic(path, &bytes)
}

/// Reads and decodes the state file at `path`.
///
/// # Errors
///
/// [`Error::Io`] if it cannot be read, else as [`decode`].
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, after
/// removing temporary files that earlier, interrupted writes left (see the
/// module doc).
///
/// # Errors
///
/// [`Error::Io`] naming the file that failed; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| state_error(path, "not a file path"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = temp_prefix(&name.to_string_lossy());
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    remove_stale_temps(&dir, &prefix);

    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // Make the rename itself durable; not every platform can open a directory,
    // so this is best effort.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The name of a temporary file for target `name`, without the process id.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Removes the files in `dir` whose names start with `prefix`: temporary files of
/// writes that were killed before their rename. Best effort: a file that cannot be
/// listed or removed stays, and never fails the save.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "stale temporary file removed"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary file")
                }
            }
        }
    }
}

fn state_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::StateFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let bytes = encode(Path::new("x"), &(1u8, "abc")).expect("encodes");
        assert_eq!(&bytes[..8], b"CONTINUL");
        assert_eq!(&bytes[8..12], &[1, 0, 0, 0]);
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        assert_eq!(len as usize, bytes.len() - HEADER_LEN);
        let back: (u8, String) = decode(Path::new("x"), &bytes).expect("decodes");
        assert_eq!(back, (1, "abc".to_owned()));
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let mut bytes = encode(Path::new("x"), &7u32).expect("encodes");
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let err = decode::<u32>(Path::new("x"), &bytes).expect_err("refused");
        assert!(
            err.to_string().contains("format version 7 is newer"),
            "{err}"
        );
    }

    #[test]
    fn short_and_empty_files() {
        for len in [0, 5, 8, 20, HEADER_LEN - 1] {
            let bytes = encode(Path::new("x"), &1u64).expect("encodes");
            assert!(decode::<u64>(Path::new("x"), &bytes[..len.min(bytes.len())]).is_err());
        }
    }
}

//! Versioned, checksummed, atomic state files.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `b"CONTINUL"` |
//! | 4 | format version, `u32` (this build writes [`FORMAT_VERSION`]) |
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
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The first eight bytes of every state file.
pub const MAGIC: [u8; 8] = *b"CONTINUL";

/// The format version this build writes, and the newest it reads. Version 2
/// stores feature vectors and weights as little-endian byte blobs (version 1:
/// one serde value per number); [`crate::Learner::load`] reads both.
pub const FORMAT_VERSION: u32 = 2;

/// Header size in bytes: magic, version, payload length, checksum.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// Encodes `state` into the bytes of a state file (header and payload).
///
/// # Errors
///
/// [`Error::StateFile`] (naming `path`) if the codec fails.
pub fn encode<T: Serialize>(path: &Path, state: &T) -> Result<Vec<u8>> {
    // The payload is encoded straight after room for the header, which is then
    // filled in: one buffer, no copy of the payload.
    let mut bytes = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(state, &mut bytes, bincode::config::standard())
        .map_err(|e| state_error(path, format!("cannot encode the state: {e}")))?;
    let payload_len = (bytes.len() - HEADER_LEN) as u64;
    let checksum = Sha256::digest(&bytes[HEADER_LEN..]);
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&payload_len.to_le_bytes());
    bytes[20..HEADER_LEN].copy_from_slice(&checksum);
    Ok(bytes)
}

/// Decodes the bytes of a state file read from `path`, of [`FORMAT_VERSION`] only.
///
/// # Errors
///
/// [`Error::StateFile`] when the magic is wrong, the version unsupported, the
/// file shorter or longer than its header says, the checksum wrong, or the
/// payload undecodable.
pub fn decode<T: DeserializeOwned + Send>(path: &Path, bytes: &[u8]) -> Result<T> {
    decode_versioned(path, bytes, FORMAT_VERSION, |_, payload| {
        decode_payload(payload)
    })
}

/// Checks the header of a state file's bytes and decodes its payload with
/// `decode(version, payload)`, for versions `oldest..=`[`FORMAT_VERSION`]: the
/// way one build reads the files of earlier versions.
///
/// The checksum is verified on a second thread while `decode` runs (it takes
/// about as long as decoding); a mismatch is reported in preference to whatever
/// `decode` made of the corrupted bytes. `decode` must therefore be safe on any
/// input, as [`decode_payload`] is.
///
/// # Errors
///
/// As [`decode`]; `decode`'s own error is reported as "cannot decode the state".
pub fn decode_versioned<T: Send>(
    path: &Path,
    bytes: &[u8],
    oldest: u32,
    decode: impl FnOnce(u32, &[u8]) -> std::result::Result<T, String> + Send,
) -> Result<T> {
    let header = check_header(path, bytes, bytes.len() as u64, oldest)?;
    let payload = &bytes[HEADER_LEN..];
    let (intact, decoded) = rayon::join(
        || Sha256::digest(payload).as_slice() == header.checksum,
        || decode(header.version, payload),
    );
    if !intact {
        return Err(state_error(
            path,
            "checksum mismatch: the file is corrupted",
        ));
    }
    decoded.map_err(|reason| state_error(path, format!("cannot decode the state: {reason}")))
}

/// Reads the state file at `path` and decodes its payload with
/// `decode(version, reader, payload_len)`, for versions `oldest..=`[`FORMAT_VERSION`].
///
/// The payload streams from the file through the checksum into `decode`, so the
/// file's bytes are never held whole: loading needs the memory of the decoded
/// state only. The checksum is complete only after `decode` returns, so a
/// mismatch is reported in preference to `decode`'s result, and `decode` must be
/// safe on any input, as [`decode_reader`] is.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or read; else as [`decode_versioned`].
pub fn load_versioned<T>(
    path: &Path,
    oldest: u32,
    decode: impl FnOnce(u32, &mut dyn Read, u64) -> std::result::Result<T, String>,
) -> Result<T> {
    let io = |e| Error::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut reader)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let header = check_header(path, &head, file_len, oldest)?;

    let mut payload = HashingReader {
        inner: reader.take(header.payload_len),
        hasher: Sha256::new(),
    };
    let decoded = decode(header.version, &mut payload, header.payload_len);
    // Hash what `decode` left unread (after an error, or trailing bytes).
    let left = std::io::copy(&mut payload, &mut std::io::sink()).map_err(io)?;
    if payload.hasher.finalize().as_slice() != header.checksum {
        return Err(state_error(
            path,
            "checksum mismatch: the file is corrupted",
        ));
    }
    let decoded = decoded
        .map_err(|reason| state_error(path, format!("cannot decode the state: {reason}")))?;
    if left > 0 {
        return Err(state_error(
            path,
            "cannot decode the state: payload has trailing bytes",
        ));
    }
    Ok(decoded)
}

/// What a valid header says.
struct Header<'a> {
    version: u32,
    payload_len: u64,
    checksum: &'a [u8],
}

/// Checks the magic, the version (`oldest..=FORMAT_VERSION`) and the declared
/// payload length of a file of `file_len` bytes that starts with `head`.
fn check_header<'a>(path: &Path, head: &'a [u8], file_len: u64, oldest: u32) -> Result<Header<'a>> {
    if head.len() < MAGIC.len() || head[..MAGIC.len()] != MAGIC {
        return Err(state_error(path, "not a continual state file (bad magic)"));
    }
    if head.len() < HEADER_LEN {
        return Err(state_error(
            path,
            format!("truncated: the header needs {HEADER_LEN} bytes, file has {file_len}"),
        ));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if version > FORMAT_VERSION {
        return Err(state_error(
            path,
            format!(
                "format version {version} is newer than this build supports ({FORMAT_VERSION})"
            ),
        ));
    }
    if version < oldest {
        return Err(state_error(
            path,
            format!(
                "format version {version} is not supported (this build reads {oldest} to {FORMAT_VERSION})"
            ),
        ));
    }
    let declared = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
    let actual = file_len.saturating_sub(HEADER_LEN as u64);
    if declared != actual {
        let what = if actual < declared {
            "truncated"
        } else {
            "trailing data"
        };
        return Err(state_error(
            path,
            format!("{what}: header says {declared} bytes of payload, file has {actual}"),
        ));
    }
    Ok(Header {
        version,
        payload_len: declared,
        checksum: &head[20..HEADER_LEN],
    })
}

/// Passes reads through, hashing every byte.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Runs `$decode` with `$config`, bincode's standard configuration limited to the
/// smallest bucket that holds `$len` bytes (see [`decode_payload`]).
macro_rules! limited {
    ($len:expr, $config:ident => $decode:expr) => {{
        macro_rules! within {
            ($limit:expr) => {{
                let $config = bincode::config::standard().with_limit::<{ $limit }>();
                $decode
            }};
        }
        match $len {
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
    }};
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
///
/// # Errors
///
/// The codec's message, or "payload has trailing bytes" when the value ends
/// before the payload does.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> std::result::Result<T, String> {
    let (value, used) = decode_within(payload).map_err(|e| e.to_string())?;
    if used != payload.len() {
        return Err("payload has trailing bytes".into());
    }
    Ok(value)
}

fn decode_within<T: DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    limited!(payload.len() as u64, config => bincode::serde::decode_from_slice(payload, config))
}

/// Decodes a payload of `payload_len` bytes from `reader`, with the limit of
/// [`decode_payload`]; the caller checks that nothing is left unread.
///
/// # Errors
///
/// The codec's message (including the reader's I/O errors).
pub fn decode_reader<T: DeserializeOwned>(
    mut reader: &mut dyn Read,
    payload_len: u64,
) -> std::result::Result<T, String> {
    limited!(payload_len, config => bincode::serde::decode_from_std_read(&mut reader, config))
        .map_err(|e| e.to_string())
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
    load_versioned(path, FORMAT_VERSION, |_, reader, len| {
        decode_reader(reader, len)
    })
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

/// Serde adapter (`#[serde(with = "f32_bytes")]`) that writes a `Vec<f32>` as one
/// byte string of little-endian values: bincode then decodes it with one copy
/// instead of one call per number.
pub mod f32_bytes {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `values` as `4 · len` bytes.
    ///
    /// # Errors
    ///
    /// The serializer's.
    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        if cfg!(target_endian = "little") {
            // The values' own memory is already their little-endian bytes.
            serializer.serialize_bytes(bytemuck::cast_slice(values))
        } else {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            serializer.serialize_bytes(&bytes)
        }
    }

    /// Reads what [`serialize`] wrote.
    ///
    /// # Errors
    ///
    /// The deserializer's, or a custom one when the length is not a multiple of 4.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        if bytes.len() % 4 != 0 {
            return Err(D::Error::custom(format!(
                "{} bytes of f32 values: not a multiple of 4",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
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

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Blob(#[serde(with = "f32_bytes")] Vec<f32>);

    #[test]
    fn f32_bytes_round_trip_bit_for_bit_and_refuse_a_ragged_length() {
        let values = Blob(vec![0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -7.25e-30]);
        let encoded =
            bincode::serde::encode_to_vec(&values, bincode::config::standard()).expect("encodes");
        // A length prefix of one byte (24 < 251) and 6 · 4 value bytes.
        assert_eq!(encoded.len(), 1 + 24);
        assert_eq!(&encoded[1..5], &0.0f32.to_le_bytes());
        let back: Blob = decode_payload(&encoded).expect("decodes");
        let bits = |b: &Blob| b.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));

        let ragged = [3u8, 1, 2, 3];
        let err = decode_payload::<Blob>(&ragged).expect_err("3 bytes are no f32");
        assert!(err.contains("not a multiple of 4"), "{err}");
    }

    #[test]
    fn header_layout() {
        let bytes = encode(Path::new("x"), &(1u8, "abc")).expect("encodes");
        assert_eq!(&bytes[..8], b"CONTINUL");
        assert_eq!(&bytes[8..12], &[2, 0, 0, 0]);
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

//! Decoding a state file: the bytes as found on disk, and the same bytes as the
//! payload under a valid header and checksum, so that the decoder and the
//! consistency checks behind the checksum are reached too.
#![no_main]

use continual::Learner;
use continual::persist::{FORMAT_VERSION, MAGIC};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let _ = Learner::decode("fuzz", data);

    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
    framed.extend_from_slice(&Sha256::digest(data));
    framed.extend_from_slice(data);
    let _ = Learner::decode("fuzz", &framed);
});

//! Parsing IDX files, plain or gzipped, as images and as labels. The parser reads
//! files, so each input is written to a file of this process first.
#![no_main]

use continual::data::{read_idx_images, read_idx_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("continual-fuzz-{}.idx", std::process::id()));
    std::fs::write(&path, data).expect("writes the input");
    let _ = read_idx_images(&path);
    let _ = read_idx_labels(&path);
});

//! Loading a feature cache (`.npz`). The loader reads files, so each input is
//! written to a file of this process first.
#![no_main]

use continual::data::FeatureCache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("continual-fuzz-{}.npz", std::process::id()));
    std::fs::write(&path, data).expect("writes the input");
    let _ = FeatureCache::load(&path);
});

//! Extracts a feature cache from IDX files or an image folder with the library
//! alone, and reports the throughput.
//!
//!     cargo run --release --example extract_cache -- <idx folder | image folder> <out.npz> \
//!         [model.onnx] [batch size]
//!
//! A folder holding `train-images-idx3-ubyte[.gz]` is read as IDX (both splits);
//! any other folder as `<class name>/<images>` (all marked as training data).

use std::path::PathBuf;
use std::time::Instant;

use continual::data::{FeatureCache, TRAIN, load_idx_folder, scan_image_folder};
use continual::extract::{Extractor, ExtractorOptions};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> continual::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!(
            "usage: extract_cache <idx folder | image folder> <out.npz> [model.onnx] [batch size]"
        );
        std::process::exit(2);
    }
    let source = PathBuf::from(&args[0]);
    let out = PathBuf::from(&args[1]);
    let model = args
        .get(2)
        .map_or("models/fashion-vgg.onnx", String::as_str);
    let batch_size = match args.get(3).map(|b| b.parse::<usize>()) {
        None => 64,
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            eprintln!("batch size: {e}");
            std::process::exit(2);
        }
    };

    let options = ExtractorOptions {
        batch_size,
        ..ExtractorOptions::default()
    };
    let mut extractor = Extractor::open(model, None, options)?;
    let start = Instant::now();
    let is_idx = ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]
        .iter()
        .any(|name| source.join(name).is_file());
    let cache = if is_idx {
        let data = load_idx_folder(&source)?;
        FeatureCache::from_idx(&mut extractor, &data, &mut |_, _| {})?
    } else {
        let folder = scan_image_folder(&source)?;
        let (cache, skipped) =
            FeatureCache::from_image_folder(&mut extractor, &folder, TRAIN, &mut |_, _| {})?;
        if !skipped.is_empty() {
            eprintln!("skipped {} files", skipped.len());
        }
        cache
    };
    let seconds = start.elapsed().as_secs_f64();
    cache.save(&out)?;
    println!(
        "{} images -> {} ({} features each) on {} in {seconds:.2} s: {:.0} images/s",
        cache.len(),
        out.display(),
        cache.dim(),
        extractor.provider(),
        cache.len() as f64 / seconds
    );
    Ok(())
}

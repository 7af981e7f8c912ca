//! Using `continual` from an application, with no command-line crates: open the
//! model, load a saved learner (or start one), learn a new class from a handful of
//! image files, predict, save.
//!
//! ```text
//! cargo run --release --example embed -- STATE CLASS IMAGE...
//! cargo run --release --example embed -- /tmp/shoes.state sneaker tests/data/images/07_7.png
//! ```

use std::path::PathBuf;

use continual::extract::{Extractor, ExtractorOptions};
use continual::{Classifier, Learner, LearnerConfig, bundled};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(state), Some(class)) = (args.next(), args.next()) else {
        return Err("usage: embed STATE CLASS IMAGE...".into());
    };
    let state = PathBuf::from(state);
    let class = class.to_string_lossy().into_owned();
    let images: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if images.is_empty() {
        return Err("give at least one image of the new class".into());
    }

    // The frozen half: the bundled model, its spec read from the JSON beside it.
    let mut extractor = Extractor::open(bundled::model(), None, ExtractorOptions::default())?;
    let features = extractor.extract_files(&images, &mut |_, _| {})?.features;

    // The learner: continue the saved one, or start a new one for this feature size.
    let mut learner = if state.exists() {
        Learner::load(&state)?
    } else {
        Learner::new(extractor.dim(), LearnerConfig::default())?
    };
    let labels = vec![class.as_str(); features.nrows()];
    let paths: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    let report = learner.learn(features.view(), &labels, Some(&paths))?;
    println!(
        "learned {:?} from {} image(s) in {:.2} s; the learner knows {} class(es)",
        class,
        report.samples,
        report.seconds,
        learner.classes().len()
    );

    for (path, p) in paths
        .iter()
        .zip(learner.predict(features.view(), Classifier::Nme, 3)?)
    {
        println!("{path}: {} ({:.3})", p.class, p.score);
    }

    // Atomic: a crash during the save leaves the previous state file intact.
    learner.save(&state)?;
    println!("saved {}", state.display());
    Ok(())
}

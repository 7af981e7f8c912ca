//! Crash safety of state files: a process killed in the middle of saving leaves
//! the previous state intact, never a partial file under the real name, and the
//! temporary files such crashes leave are ignored by loading and removed by the
//! next save.
//!
//! The saving process is this test binary itself, run again with
//! `CONTINUAL_CRASH_SAVER` naming the state file: its one test then saves two
//! large states in turn until it is killed with `SIGKILL`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use continual::{Classifier, Learner, LearnerConfig};
use ndarray::Array2;

const SAVER_ENV: &str = "CONTINUAL_CRASH_SAVER";
/// What the saver prints once its first save is done.
const READY: &str = "crash-saver: saving";

/// Size of the metadata blob that makes each state a few megabytes, so that a
/// save takes long enough to be killed in the middle of.
const BLOB_BYTES: usize = 4 << 20;

/// A small learner whose state is large: one step of two classes, and a
/// metadata blob of `fill` bytes.
fn big_learner(fill: char) -> Learner {
    let config = LearnerConfig {
        hidden: vec![],
        epochs: 1,
        memory: 8,
        seed: 7,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(4, config).expect("valid config");
    let x = Array2::from_shape_fn((8, 4), |(i, j)| ((i % 2) * 2 + j) as f32 * 0.25);
    let labels: Vec<String> = (0..8).map(|i| format!("c{}", i % 2)).collect();
    learner.learn(x.view(), &labels, None).expect("learns");
    learner
        .metadata_mut()
        .insert("blob".into(), fill.to_string().repeat(BLOB_BYTES));
    learner
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("lists the directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    found.sort();
    found
}

/// The child's role: saves the two states in turn, forever. Does nothing (and
/// passes) when run as an ordinary test.
#[test]
fn saver_child() {
    let Some(path) = std::env::var_os(SAVER_ENV) else {
        return;
    };
    let states = [big_learner('a'), big_learner('b')];
    states[0].save(&path).expect("child saves");
    // Tells the parent that saving is under way, so its delays count from here.
    println!("{READY}");
    for k in 1.. {
        states[k % 2].save(&path).expect("child saves");
    }
}

fn spawn_saver(path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "saver_child", "--nocapture", "--test-threads=1"])
        .env(SAVER_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns the saver")
}

/// Reads the child's output until it says it is saving.
fn wait_for_saving(child: &mut std::process::Child) {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the saver says it is saving before it exits")
            .expect("reads the saver's output");
        if line.contains(READY) {
            return;
        }
    }
}

#[test]
fn killed_saves_leave_a_complete_old_or_new_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("learner.state");
    let a = big_learner('a');
    let b = big_learner('b');
    a.save(&path).expect("saves the first state");
    let bytes_a = std::fs::read(&path).expect("reads");
    b.save(&path).expect("saves the second state");
    let bytes_b = std::fs::read(&path).expect("reads");
    assert_ne!(bytes_a, bytes_b);

    // How long one save takes here, to spread the kills over the whole of one.
    let started = Instant::now();
    for _ in 0..4 {
        a.save(&path).expect("saves");
    }
    let save_time = started.elapsed() / 4;

    let probe = Array2::from_shape_fn((3, 4), |(i, j)| (i + j) as f32 * 0.3);
    let expected = a.scores(probe.view(), Classifier::Head).expect("scores");
    let mut interrupted = 0;
    let kills = 24;
    for k in 0..kills {
        let mut child = spawn_saver(&path);
        wait_for_saving(&mut child);
        // A point spread over two save durations after the child's first save.
        let delay = save_time * 2 * k / kills;
        std::thread::sleep(delay);
        child.kill().expect("kills the saver"); // SIGKILL on Unix.
        child.wait().expect("reaps the saver");

        let on_disk = std::fs::read(&path).expect("the state file is still there");
        assert!(
            on_disk == bytes_a || on_disk == bytes_b,
            "kill {k} after {delay:?}: the file is neither state ({} bytes)",
            on_disk.len()
        );
        let loaded = Learner::load(&path).expect("the state under the real name loads");
        assert_eq!(
            loaded
                .scores(probe.view(), Classifier::Head)
                .expect("scores"),
            expected,
            "same head in both states"
        );
        if !temp_files(dir.path()).is_empty() {
            interrupted += 1;
        }
    }
    eprintln!(
        "{kills} kills, one save ≈ {save_time:?}, {interrupted} left a temporary file behind"
    );
    assert!(
        interrupted > 0,
        "no kill landed in the middle of a save (one save ≈ {save_time:?}); the test proves nothing"
    );

    // The next save removes what the killed ones left.
    a.save(&path).expect("saves");
    assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read(&path).expect("reads"), bytes_a);
}

#[test]
fn stale_temporary_files_are_ignored_by_load_and_removed_by_save() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("learner.state");
    let learner = big_learner('a');
    learner.save(&path).expect("saves");
    let saved = std::fs::read(&path).expect("reads");

    // What crashed saves of other processes leave: a torn copy and an empty one.
    let torn = dir.path().join(".learner.state.tmp-999999");
    let empty = dir.path().join(".learner.state.tmp-4242");
    std::fs::write(&torn, &saved[..saved.len() / 2]).expect("writes");
    std::fs::write(&empty, b"").expect("writes");
    // Temporary files of another state file stay untouched.
    let other = dir.path().join(".other.state.tmp-999999");
    std::fs::write(&other, b"x").expect("writes");

    let loaded = Learner::load(&path).expect("loads despite the stale files");
    assert_eq!(loaded.classes(), learner.classes());

    learner.save(&path).expect("saves");
    assert_eq!(temp_files(dir.path()), vec![other]);
    assert_eq!(std::fs::read(&path).expect("reads"), saved);
}

#[test]
fn a_failed_save_leaves_the_old_state_and_no_temporary_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("learner.state");
    let learner = big_learner('a');
    learner.save(&path).expect("saves");
    let saved = std::fs::read(&path).expect("reads");

    // A directory under the real name makes the rename fail after the temporary
    // file is written.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).expect("creates");
    std::fs::write(blocked.join("inside"), b"keeps the directory non-empty").expect("writes");
    let err = learner
        .save(&blocked)
        .expect_err("cannot replace a directory");
    assert!(err.to_string().contains("blocked"), "{err}");
    assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read(&path).expect("reads"), saved);
}

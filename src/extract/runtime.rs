//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! Lookup order: an explicit path, then `ORT_DYLIB_PATH`, then the copy that
//! `scripts/setup.sh` installs under `.onnxruntime/{gpu,cpu}/` (in the source
//! checkout this crate was built from, then the current directory, then next to
//! the executable).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::{Error, Result};

/// The ONNX Runtime version `scripts/setup.sh` installs.
pub const ORT_VERSION: &str = "1.31.1";

/// File name of the runtime library inside the PyPI wheel.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// The environment variable that names a runtime library explicitly.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// Folder (relative to a checkout) where `scripts/setup.sh` installs the runtime.
const LOCAL_DIR: &str = ".onnxruntime";

/// The command that installs the runtime, quoted in errors.
const SETUP_HINT: &str = "run scripts/setup.sh (add --gpu for CUDA) or set ORT_DYLIB_PATH";

/// The one runtime loaded into this process: where it came from and its environment.
struct Loaded {
    path: PathBuf,
    environment: Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
/// Serialises first-time loading so that two threads cannot load two libraries.
static LOADING: Mutex<()> = Mutex::new(());

/// Where a library path came from; decides whether a mismatch with an already
/// loaded runtime is an error (a path the caller chose) or is resolved by
/// reusing what is loaded (a path the default search found).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Passed in the options.
    Explicit,
    /// Taken from `ORT_DYLIB_PATH`.
    EnvVar,
    /// Found in a project-local `.onnxruntime/` folder.
    Search,
}

/// The project-local places to look, in order. `gpu` puts the CUDA build first.
pub(crate) fn search_paths(gpu: bool) -> Vec<PathBuf> {
    let flavours: &[&str] = if gpu { &["gpu", "cpu"] } else { &["cpu"] };
    let mut roots = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    if let Ok(dir) = std::env::current_dir() {
        roots.push(dir);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }

    let mut paths = Vec::new();
    for root in &roots {
        for flavour in flavours {
            let path = root.join(LOCAL_DIR).join(flavour).join(LIBRARY_FILE);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

/// Chooses the runtime library: `explicit`, else the `env_var` value, else the
/// first of `search` that exists.
///
/// # Errors
///
/// [`Error::Runtime`] when an explicit or `ORT_DYLIB_PATH` file does not exist
/// (naming it), or when no candidate exists (listing where it looked and how to
/// install the runtime).
pub(crate) fn locate(
    explicit: Option<&Path>,
    env_var: Option<OsString>,
    search: &[PathBuf],
) -> Result<(PathBuf, Origin)> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(Error::Runtime(format!(
                "library {} does not exist",
                path.display()
            )));
        }
        return Ok((absolute(path), Origin::Explicit));
    }
    if let Some(value) = env_var.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if !path.is_file() {
            return Err(Error::Runtime(format!(
                "{ENV_VAR}={} does not exist",
                path.display()
            )));
        }
        return Ok((absolute(&path), Origin::EnvVar));
    }
    if let Some(path) = search.iter().find(|p| p.is_file()) {
        return Ok((path.clone(), Origin::Search));
    }
    let looked: Vec<String> = search.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Runtime(format!(
        "library not found (looked in: {}); {SETUP_HINT}",
        looked.join(", ")
    )))
}

/// The process's ONNX Runtime environment, loading the library on first use.
///
/// `gpu` prefers the CUDA build of the project-local copy when both are installed.
/// Returns the environment and the path of the library in use.
///
/// # Errors
///
/// [`Error::Runtime`] when no library is found, when it cannot be loaded, or when
/// the caller names a library other than the one this process already loaded (a
/// process holds one ONNX Runtime).
pub(crate) fn environment(explicit: Option<&Path>, gpu: bool) -> Result<(Environment, PathBuf)> {
    let (path, origin) = locate(explicit, std::env::var_os(ENV_VAR), &search_paths(gpu))?;
    let _guard = LOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    if let Some(loaded) = LOADED.get() {
        if origin != Origin::Search && !same_file(&loaded.path, &path) {
            return Err(Error::Runtime(format!(
                "this process already loaded {}; it cannot also load {}",
                loaded.path.display(),
                path.display()
            )));
        }
        return Ok((loaded.environment.clone(), loaded.path.clone()));
    }

    let builder = ort::init_from(&path).map_err(|e| {
        Error::Runtime(format!("cannot load {}: {e}; {SETUP_HINT}", path.display()))
    })?;
    let environment = builder.with_name("continual").build()?;
    let loaded = LOADED.get_or_init(|| Loaded {
        path: path.clone(),
        environment,
    });
    tracing::debug!(path = %loaded.path.display(), "onnx runtime loaded");
    Ok((loaded.environment.clone(), loaded.path.clone()))
}

/// The library this process loaded, if any.
pub fn loaded_library() -> Option<&'static Path> {
    LOADED.get().map(|loaded| loaded.path.as_path())
}

/// `path` made absolute against the current directory: `ort` would otherwise try
/// a relative path next to the executable first.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The CUDA and cuDNN library folders that `scripts/setup.sh --gpu` unpacks next
/// to the CUDA build of the runtime (`nvidia/<component>/lib/`), if present.
///
/// Returns `(cuda_dir, cudnn_dir)`; either is `None` when not found there, in
/// which case the system's dynamic loader search applies.
pub(crate) fn cuda_library_dirs(runtime: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let Some(nvidia) = runtime.parent().map(|dir| dir.join("nvidia")) else {
        return (None, None);
    };
    let Ok(entries) = std::fs::read_dir(&nvidia) else {
        return (None, None);
    };
    let mut lib_dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path().join("lib")))
        .filter(|dir| dir.is_dir())
        .collect();
    lib_dirs.sort();
    let find = |file: &str| {
        lib_dirs
            .iter()
            .find(|dir| dir.join(file).is_file())
            .cloned()
    };
    (find("libcudart.so.13"), find("libcudnn.so.9"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_lists_the_places_and_the_command() {
        let search = vec![
            PathBuf::from("/nonexistent/a/libonnxruntime.so.1.31.1"),
            PathBuf::from("/nonexistent/b/libonnxruntime.so.1.31.1"),
        ];
        let err = locate(None, None, &search).expect_err("nothing exists");
        let message = err.to_string();
        assert!(matches!(err, Error::Runtime(_)), "{message}");
        assert!(message.contains("not found"), "{message}");
        assert!(message.contains("/nonexistent/a/"), "{message}");
        assert!(message.contains("/nonexistent/b/"), "{message}");
        assert!(message.contains("scripts/setup.sh"), "{message}");
        assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    }

    #[test]
    fn explicit_path_wins_and_must_exist() {
        let existing = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let env = Some(OsString::from("/nonexistent/from-env.so"));

        let (path, origin) =
            locate(Some(&existing), env.clone(), &[]).expect("explicit file exists");
        assert_eq!((path, origin), (existing, Origin::Explicit));

        let err = locate(Some(Path::new("/nonexistent/explicit.so")), env, &[])
            .expect_err("explicit file missing");
        assert!(
            err.to_string().contains("/nonexistent/explicit.so"),
            "{err}"
        );
    }

    #[test]
    fn env_var_comes_before_the_search_and_empty_means_unset() {
        let existing = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let search = vec![existing.clone()];

        let err = locate(None, Some(OsString::from("/nonexistent/env.so")), &search)
            .expect_err("env file missing");
        assert!(
            err.to_string()
                .contains("ORT_DYLIB_PATH=/nonexistent/env.so"),
            "{err}"
        );

        let (path, origin) = locate(None, Some(OsString::new()), &search).expect("search finds it");
        assert_eq!((path, origin), (existing, Origin::Search));
    }

    #[test]
    fn search_prefers_gpu_only_when_asked() {
        let cpu_only = search_paths(false);
        assert!(
            cpu_only
                .iter()
                .all(|p| p.to_string_lossy().contains("/cpu/"))
        );
        let gpu_first = search_paths(true);
        assert!(
            gpu_first[0]
                .to_string_lossy()
                .contains("/.onnxruntime/gpu/")
        );
        assert!(gpu_first[0].starts_with(env!("CARGO_MANIFEST_DIR")));
    }

    #[test]
    fn cuda_libraries_are_found_beside_the_gpu_runtime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = dir.path().join(LIBRARY_FILE);
        assert_eq!(cuda_library_dirs(&runtime), (None, None));

        let cu13 = dir.path().join("nvidia/cu13/lib");
        let cudnn = dir.path().join("nvidia/cudnn/lib");
        std::fs::create_dir_all(&cu13).expect("mkdir");
        std::fs::create_dir_all(&cudnn).expect("mkdir");
        std::fs::write(cu13.join("libcudart.so.13"), b"").expect("write");
        std::fs::write(cudnn.join("libcudnn.so.9"), b"").expect("write");
        assert_eq!(cuda_library_dirs(&runtime), (Some(cu13), Some(cudnn)));
    }
}

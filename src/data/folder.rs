//! A folder of class sub-folders of images: `root/<class name>/<image>`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// File extensions (lower-case) taken as images; others are ignored.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp", "pbm", "pgm", "ppm", "pnm",
];

/// The images of a class-per-folder tree, in a deterministic order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFolder {
    /// Class names: the sub-folder names, sorted.
    pub class_names: Vec<String>,
    /// `(image path, class index)`, by class then by file name.
    pub items: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// The image paths alone, in item order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.items.iter().map(|(path, _)| path.clone()).collect()
    }

    /// The class indices alone, in item order.
    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|&(_, label)| label).collect()
    }
}

/// Lists `dir`'s class sub-folders and their image files.
///
/// Class name = sub-folder name; classes and files are sorted by name (byte
/// order), so the result does not depend on the file system. Only files with an
/// image extension ([`IMAGE_EXTENSIONS`], any case) count; hidden entries
/// (starting with `.`) and files directly in `dir` are ignored; sub-folders of
/// class folders are not searched.
///
/// # Errors
///
/// [`Error::Io`] when a folder cannot be read; [`Error::Data`] when `dir` has no
/// class sub-folders or a class folder holds no image.
pub fn scan_image_folder(dir: &Path) -> Result<ImageFolder> {
    let mut classes = list(dir)?
        .into_iter()
        .filter(|(_, path)| path.is_dir())
        .collect::<Vec<_>>();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            reason: "no class sub-folders (expected <folder>/<class name>/<images>)".into(),
        });
    }

    let mut class_names = Vec::with_capacity(classes.len());
    let mut items = Vec::new();
    for (label, (name, class_dir)) in classes.into_iter().enumerate() {
        let mut files: Vec<(String, PathBuf)> = list(&class_dir)?
            .into_iter()
            .filter(|(_, path)| is_image_file(path) && path.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Data {
                path: class_dir,
                reason: format!(
                    "class folder holds no images ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
        items.extend(files.into_iter().map(|(_, path)| (path, label)));
        class_names.push(name);
    }
    Ok(ImageFolder { class_names, items })
}

/// The non-hidden entries of a folder as `(name, path)`.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            entries.push((name, entry.path()));
        }
    }
    Ok(entries)
}

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_match_in_any_case() {
        assert!(
            is_image_file(Path::new("a.PNG"))
                && is_image_file(Path::new("b.jpeg"))
                && is_image_file(Path::new("c.Tif"))
        );
        assert!(
            !is_image_file(Path::new("notes.txt"))
                && !is_image_file(Path::new("png"))
                && !is_image_file(Path::new("x.png.bak"))
        );
    }
}

//! Reading a project for detection within caps: files by name only (at the top level or a few
//! named directories deep), each at most [`MAX_FILE`] bytes, never through a symbolic link, so a
//! link planted in the project cannot make `galley init --detect` read a file outside it.

use std::path::{Path, PathBuf};

use crate::fsutil::ReadError;

/// The most of one file detection reads; a larger manifest is reported, not read.
pub const MAX_FILE: u64 = 1 << 20;

/// What a name in the project is, as far as detection may look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    /// A symbolic link (at the name or on the way to it): not followed.
    Link,
    /// Not a regular file (a directory, a FIFO, a device).
    NotFile,
    /// A regular file larger than [`MAX_FILE`].
    TooLarge(u64),
    /// A regular file's bytes.
    File(Vec<u8>),
}

/// A project directory read only through [`Tree::read`].
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    pub fn new(root: &Path) -> Tree {
        Tree { root: root.to_path_buf() }
    }

    /// The file at `rel` (components separated by `/`, no `..`), read without following a link.
    pub fn read(&self, rel: &str) -> Entry {
        let Some(path) = self.beneath(rel) else {
            return Entry::Missing;
        };
        if let Some(entry) = self.link_on_the_way(rel) {
            return entry;
        }
        // A link swapped in after the check above is refused, not followed; a FIFO is not
        // waited on.
        match crate::fsutil::read_regular(&path, MAX_FILE) {
            Ok(bytes) => Entry::File(bytes),
            Err(ReadError::Link) => Entry::Link,
            Err(ReadError::NotFile) => Entry::NotFile,
            Err(ReadError::TooLarge { size, .. }) => Entry::TooLarge(size),
            Err(ReadError::Io(_) | ReadError::Escapes(_)) => Entry::Missing,
        }
    }

    /// Whether `rel` is a regular file reached without a link, of any size: nothing is read.
    pub fn is_file(&self, rel: &str) -> bool {
        self.beneath(rel).is_some()
            && self.link_on_the_way(rel).is_none()
            && std::fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_file())
    }

    fn beneath(&self, rel: &str) -> Option<PathBuf> {
        let clean = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        clean.then(|| self.root.join(rel))
    }

    /// `Some(Link)` when `rel` or a directory on the way to it is a symbolic link; `Some(Missing)`
    /// when a directory on the way is not there.
    fn link_on_the_way(&self, rel: &str) -> Option<Entry> {
        let mut at = self.root.clone();
        for part in rel.split('/') {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Some(Entry::Link),
                Ok(_) => {}
                Err(_) => return Some(Entry::Missing),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_by_name_never_through_a_link_and_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        std::fs::create_dir(outside.path().join("public")).unwrap();
        std::fs::write(outside.path().join("public/index.html"), "x").unwrap();
        std::fs::write(dir.path().join("a"), "inside").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("public"), dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        let tree = Tree::new(dir.path());
        assert_eq!(tree.read("a"), Entry::File(b"inside".to_vec()));
        assert_eq!(tree.read("link"), Entry::Link);
        assert_eq!(tree.read("public/index.html"), Entry::Link);
        assert!(!tree.is_file("public/index.html") && !tree.is_file("link"));
        assert_eq!(tree.read("big"), Entry::TooLarge(MAX_FILE + 1));
        assert!(tree.is_file("big"), "a file too large to read is still there");
        assert_eq!(tree.read("none"), Entry::Missing);
        assert_eq!(tree.read("../a"), Entry::Missing);
    }
}

//! Content digests of the project paths an image copies, computed without building: what the
//! lock records so that `galley lock --check` sees an edited file without a container runtime.
//!
//! A digest covers, for every entry under the path in sorted order: its relative path, its kind
//! (file, directory, symlink), for files the executable bit and the content, for symlinks the
//! target. Ownership, timestamps and other mode bits are not inputs: the image writer normalizes
//! them, so they cannot change the image.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::domain::Digest;

/// Digest of the file or tree at `root`.
pub fn tree_digest(root: &Path) -> std::io::Result<Digest> {
    let mut h = Sha256::new();
    let meta = fs_err::symlink_metadata(root)?;
    entry(root, "", &meta, &mut h)?;
    if meta.is_dir() {
        let found = crate::image::walk_under(root).map_err(|e| std::io::Error::other(e.to_string()))?;
        for f in &found {
            entry(&f.path, &f.rel, &f.meta, &mut h)?;
        }
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

/// One entry's part of the digest (a directory's contents are entries of their own).
fn entry(path: &Path, rel: &str, meta: &std::fs::Metadata, h: &mut Sha256) -> std::io::Result<()> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs_err::read_link(path)?;
        field(h, b"l", rel.as_bytes());
        field(h, b"t", target.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        field(h, b"d", rel.as_bytes());
    } else if ft.is_file() {
        let exec = meta.permissions().mode() & 0o111 != 0;
        field(h, if exec { b"x" } else { b"f" }, rel.as_bytes());
        let with_path = |e| crate::fsutil::with_path(e, path);
        let mut file = std::fs::File::open(path).map_err(with_path)?;
        let (content, _) = crate::image::store::sha256_read(&mut file).map_err(with_path)?;
        h.update(content.as_bytes());
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: only files, directories and symlinks can be copied into an image", path.display()),
        ));
    }
    Ok(())
}

fn field(h: &mut Sha256, tag: &[u8], bytes: &[u8]) {
    h.update(tag);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_and_exec_bit_change_the_digest_but_mtime_does_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("t")).unwrap();
        let f = d.path().join("t/a");
        std::fs::write(&f, "1").unwrap();
        let first = tree_digest(&d.path().join("t")).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(100);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(later).unwrap();
        assert_eq!(tree_digest(&d.path().join("t")).unwrap(), first);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = tree_digest(&d.path().join("t")).unwrap();
        assert_ne!(exec, first);
        std::fs::write(&f, "2").unwrap();
        assert_ne!(tree_digest(&d.path().join("t")).unwrap(), exec);
    }
}

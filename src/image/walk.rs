//! Walking host files: the entries of an image's `files` copies, and a sorted walk of a tree
//! whose directories are stat'ed in parallel, with a result that does not depend on scheduling.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::ImageError;
use super::layer::{Entry, Kind};
use crate::model::Image;

pub(super) fn input_err(path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Input { path: path.to_owned(), message: e.to_string() }
}

/// Turn later entries of the same (device, inode) into hard links to the first one (in the
/// sorted order), so hard links survive and are stored once.
pub(super) fn link_hardlinks(entries: Vec<Entry>) -> Vec<Entry> {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    entries
        .into_iter()
        .map(|mut e| {
            if let Kind::File { src, stat, .. } = &e.kind {
                let meta = match stat {
                    Some(m) => Ok(m.clone()),
                    None => fs::metadata(src).map(Arc::new),
                };
                if let Ok(meta) = meta
                    && meta.nlink() > 1 {
                        let id = (meta.dev(), meta.ino());
                        match first.get(&id) {
                            Some(target) => e.kind = Kind::Hardlink(target.clone()),
                            None => {
                                first.insert(id, e.path.clone());
                            }
                        }
                    }
            }
            e
        })
        .collect()
}

/// The image path `dst` as a relative layer path (`/srv/www` -> `srv/www`).
fn layer_path(dst: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in dst.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("`{dst}` leaves the image root")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The entries of an image's `files`, in declaration order (normalized later).
pub fn walk_files(project_dir: &Path, image: &Image, epoch: u64) -> Result<Vec<Entry>, ImageError> {
    let mut out = Vec::new();
    for copy in &image.files {
        let src = project_dir.join(&copy.src);
        let dst = layer_path(&copy.dst).map_err(|m| ImageError::Input { path: src.clone(), message: m })?;
        let own = Own { uid: copy.uid, gid: copy.gid, mode: copy.mode_bits(), epoch };
        walk_one(&src, dst, &own, &mut out)?;
    }
    Ok(out)
}

struct Own {
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    epoch: u64,
}

fn walk_one(src: &Path, dst: String, own: &Own, out: &mut Vec<Entry>) -> Result<(), ImageError> {
    let meta = fs::symlink_metadata(src).map_err(|e| input_err(src, e))?;
    if dst.is_empty() && !meta.is_dir() {
        return Err(ImageError::Input { path: src.into(), message: "only a directory can be copied onto the image root `/`".into() });
    }
    if !meta.is_dir() {
        out.push(copied(src.to_owned(), dst, meta, own)?);
        return Ok(());
    }
    // A directory copied onto `/` gives its contents; the root itself is not an entry.
    if !dst.is_empty() {
        out.push(copied(src.to_owned(), dst.clone(), meta, own)?);
    }
    let found = walk_under(src)?;
    out.reserve(found.len());
    for f in found {
        if f.path.file_name().and_then(|n| n.to_str()).is_none() {
            return Err(ImageError::Input { path: f.path, message: "file names must be UTF-8".into() });
        }
        let path = if dst.is_empty() { f.rel } else { format!("{dst}/{}", f.rel) };
        out.push(copied(f.path, path, f.meta, own)?);
    }
    Ok(())
}

/// The layer entry for host file `src` (metadata `meta`) copied to `dst`.
fn copied(src: PathBuf, dst: String, meta: fs::Metadata, own: &Own) -> Result<Entry, ImageError> {
    let mtime = (meta.mtime().max(0) as u64).min(own.epoch);
    let ft = meta.file_type();
    let entry = |kind: Kind, mode: u32| Entry { path: dst, kind, mode, uid: own.uid, gid: own.gid, mtime };
    if ft.is_dir() {
        Ok(entry(Kind::Dir, 0o755))
    } else if ft.is_file() {
        let exec = meta.permissions().mode() & 0o111 != 0;
        let mode = own.mode.unwrap_or(if exec { 0o755 } else { 0o644 });
        let size = meta.len();
        Ok(entry(Kind::File { src, size, stat: Some(Arc::new(meta)) }, mode))
    } else if ft.is_symlink() {
        let target = fs::read_link(&src).map_err(|e| input_err(&src, e))?;
        let target = target.to_str().ok_or_else(|| ImageError::Input { path: src.clone(), message: "link targets must be UTF-8".into() })?;
        Ok(entry(Kind::Symlink(target.into()), 0o777))
    } else {
        Err(ImageError::Input { path: src, message: "only regular files, directories and symlinks can be copied".into() })
    }
}

/// One thing found by [`walk_sorted`].
pub(crate) struct Found {
    /// Relative to the walk's root, `/`-separated (not-UTF-8 names lossily).
    pub rel: String,
    pub path: PathBuf,
    /// Not following symlinks.
    pub meta: fs::Metadata,
}

/// Everything under `dir` that `keep(parent_rel, name)` keeps, as [`walk_sorted`] orders it.
pub(crate) fn walk_filtered(dir: &Path, keep: &(dyn Fn(&str, &str) -> bool + Sync)) -> Result<Vec<Found>, ImageError> {
    let mut out = Vec::new();
    walk_sorted(dir, "", keep, &mut out)?;
    Ok(out)
}

/// Everything under `dir`, as [`walk_sorted`] orders it.
pub(crate) fn walk_under(dir: &Path) -> Result<Vec<Found>, ImageError> {
    let mut out = Vec::new();
    walk_sorted(dir, "", &|_, _| true, &mut out)?;
    Ok(out)
}

/// Everything under `dir` (not `dir` itself) that `keep(parent_rel, name)` keeps, in name order
/// with each directory right before its contents. A large tree's walk is mostly `stat` calls, so
/// each directory's children are stat'ed in parallel, relative to the directory's descriptor,
/// and joined back in name order: the result does not depend on scheduling.
fn walk_sorted(dir: &Path, rel: &str, keep: &(dyn Fn(&str, &str) -> bool + Sync), out: &mut Vec<Found>) -> Result<(), ImageError> {
    let mut children: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(|e| input_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| input_err(dir, e))?;
    children.sort_unstable_by_key(fs::DirEntry::file_name);
    let parts: Vec<Vec<Found>> = children
        .into_par_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            keep(rel, &name).then_some((name, e))
        })
        .map(|(name, e)| {
            let path = e.path();
            let meta = e.metadata().map_err(|err| input_err(&path, err))?;
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let mut part = Vec::new();
            if meta.is_dir() {
                let (dir, sub) = (path.clone(), rel.clone());
                part.push(Found { rel, path, meta });
                walk_sorted(&dir, &sub, keep, &mut part)?;
            } else {
                part.push(Found { rel, path, meta });
            }
            Ok(part)
        })
        .collect::<Result<_, ImageError>>()?;
    out.reserve(parts.iter().map(Vec::len).sum());
    out.extend(parts.into_iter().flatten());
    Ok(())
}

/// Every entry under `dir` but `.git` and `galley.lock`, with its relative path. The lock is left
/// out because it records the steps' outputs: hashing it into their keys would be circular.
pub(super) fn walk_tree(dir: &Path) -> Result<Vec<Found>, ImageError> {
    let mut out = Vec::new();
    walk_sorted(dir, "", &|parent, name| !(parent.is_empty() && (name == ".git" || name == crate::lang::LOCK_FILE)), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_are_relative_and_stay_inside() {
        assert_eq!(layer_path("/srv/www/").unwrap(), "srv/www");
        assert_eq!(layer_path("/a/./b").unwrap(), "a/b");
        assert!(layer_path("/a/../../etc").is_err());
    }
}

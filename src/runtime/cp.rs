//! Files into and out of a sandbox's volumes. Copying in sends a tar stream built here (entries
//! owned by the sandbox's uid) to `podman cp -`. Copying out reads `podman cp CONTAINER:PATH -`
//! and extracts it with a strict extractor: a hostile sandbox controls every byte of that
//! stream, so absolute names, `..`, symlinks, hardlinks, devices and anything reached through a
//! symlink are skipped and reported, never written.

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{Result, RuntimeError};
use crate::manifest::SandboxManifest;

/// An archive entry the extractor refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The absolute path `path` names inside one of the sandbox's volumes; a relative path is
/// relative to the `workspace` volume (or the first one).
pub fn volume_path(m: &SandboxManifest, path: &str) -> Result<String> {
    let refuse = |why: &str| RuntimeError::Other(format!("cannot copy to or from {path} in sandbox `{}`: {why}", m.sandbox));
    let base = m
        .volumes
        .iter()
        .find(|v| v.name == "workspace")
        .or_else(|| m.volumes.first())
        .ok_or_else(|| refuse("it has no volume"))?;
    let joined = if path.starts_with('/') { PathBuf::from(path) } else { Path::new(&base.path).join(path) };
    let mut clean = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(refuse("`..` is not allowed")),
        }
    }
    let inside = m.volumes.iter().any(|v| clean.starts_with(&v.path));
    if !inside {
        return Err(refuse("only paths inside the sandbox's volumes can be copied"));
    }
    Ok(clean.to_string_lossy().into_owned())
}

/// A tar stream of `local` (a file or a directory, recursively) under its own base name, every
/// entry owned by `uid:gid`. Symlinks and special files are skipped.
pub fn archive(local: &Path, uid: u32, gid: u32) -> Result<(Vec<u8>, Vec<Skipped>)> {
    let name = local.file_name().ok_or_else(|| RuntimeError::Other(format!("{} has no file name", local.display())))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut skipped = Vec::new();
    add(&mut builder, local, Path::new(name), uid, gid, &mut skipped)?;
    let bytes = builder.into_inner().map_err(RuntimeError::io(local))?;
    Ok((bytes, skipped))
}

fn add(b: &mut tar::Builder<Vec<u8>>, path: &Path, name: &Path, uid: u32, gid: u32, skipped: &mut Vec<Skipped>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(RuntimeError::io(path))?;
    let mut h = tar::Header::new_gnu();
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mode(meta.permissions().mode() & 0o777);
    h.set_mtime(meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs()));
    if meta.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty()).map_err(RuntimeError::io(path))?;
        let mut entries: Vec<_> = std::fs::read_dir(path).map_err(RuntimeError::io(path))?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            add(b, &e.path(), &name.join(e.file_name()), uid, gid, skipped)?;
        }
    } else if meta.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(meta.len());
        let f = std::fs::File::open(path).map_err(RuntimeError::io(path))?;
        b.append_data(&mut h, name, f).map_err(RuntimeError::io(path))?;
    } else {
        skipped.push(Skipped { path: name.display().to_string(), reason: "not a regular file or directory".into() });
    }
    Ok(())
}

/// Extract `stream` under `dest`, writing only regular files and directories strictly inside
/// it. Returns the number of files written and what was skipped.
pub fn extract(stream: impl Read, dest: &Path) -> Result<(usize, Vec<Skipped>)> {
    let mut archive = tar::Archive::new(stream);
    let mut skipped = Vec::new();
    let mut written = 0;
    let entries = archive.entries().map_err(RuntimeError::io(dest))?;
    for entry in entries {
        let mut entry = entry.map_err(RuntimeError::io(dest))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut skip = |reason: &str| skipped.push(Skipped { path: raw.clone(), reason: reason.to_owned() });
        let Some(rel) = safe_relative(&raw) else {
            skip("absolute path or `..`");
            continue;
        };
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            skip(match kind {
                tar::EntryType::Symlink => "symbolic link",
                tar::EntryType::Link => "hard link",
                tar::EntryType::Char | tar::EntryType::Block => "device file",
                tar::EntryType::Fifo => "fifo",
                _ => "unsupported entry type",
            });
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        if !parents_are_directories(dest, &rel) {
            skip("a parent directory is missing or is not a plain directory");
            continue;
        }
        let target = dest.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if kind.is_dir() {
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => skip("exists and is not a directory"),
                Err(_) => {
                    std::fs::create_dir(&target).map_err(RuntimeError::io(&target))?;
                    let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o700));
                }
            }
            continue;
        }
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            if !m.is_file() {
                skip("exists and is not a regular file");
                continue;
            }
            // Never write through an existing name: it may be a hard link to something else.
            std::fs::remove_file(&target).map_err(RuntimeError::io(&target))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode | 0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(RuntimeError::io(&target))?;
        std::io::copy(&mut entry, &mut f).map_err(RuntimeError::io(&target))?;
        written += 1;
    }
    Ok((written, skipped))
}

/// `raw` as a relative path of normal components only.
fn safe_relative(raw: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Every ancestor of `rel` under `dest` exists as a real directory (not a symlink).
fn parents_are_directories(dest: &Path, rel: &Path) -> bool {
    let mut at = dest.to_path_buf();
    let Some(parent) = rel.parent() else { return true };
    for c in parent.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

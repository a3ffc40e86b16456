//! Files into and out of a sandbox's volumes. Copying in sends a tar stream built here (entries
//! owned by the sandbox's uid) to `podman cp -`. Copying out reads `podman cp CONTAINER:PATH -`
//! and extracts it with a strict extractor: a hostile sandbox controls every byte of that
//! stream, so absolute names, `..`, symlinks, hardlinks, devices and anything reached through a
//! symlink are skipped and reported, never written.

use std::collections::HashSet;
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
        .find(|v| v.name.as_str() == "workspace")
        .or_else(|| m.volumes.first())
        .ok_or_else(|| refuse("it has no volume"))?;
    let joined = if path.starts_with('/') { PathBuf::from(path) } else { Path::new(base.path.as_str()).join(path) };
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

/// The uid and gid files copied into the sandbox are owned by ([`crate::domain::UserSpec::ids`]);
/// a user named by account has none galley can know, so copying in is refused.
pub fn owner(m: &SandboxManifest) -> Result<(u32, u32)> {
    m.user.ids().ok_or_else(|| {
        RuntimeError::Other(format!(
            "cannot copy into sandbox `{}`: files are owned by the sandbox's uid, but user \"{}\" is not numeric; write it as uid:gid",
            m.sandbox, m.user
        ))
    })
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
/// it. A hard link to a file extracted earlier becomes an independent copy. Returns the number
/// of files written and what was skipped.
pub fn extract(stream: impl Read, dest: &Path) -> Result<(usize, Vec<Skipped>)> {
    let mut archive = tar::Archive::new(stream);
    let mut skipped = Vec::new();
    let mut written: HashSet<PathBuf> = HashSet::new();
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
        let link_source = if kind == tar::EntryType::Link {
            let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned());
            match target.as_deref().and_then(safe_relative).filter(|t| written.contains(t)) {
                Some(t) => Some(dest.join(t)),
                None => {
                    skip("hard link to something outside what was copied");
                    continue;
                }
            }
        } else {
            None
        };
        if !(kind.is_file() || kind.is_dir() || link_source.is_some()) {
            skip(match kind {
                tar::EntryType::Symlink => "symbolic link",
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
        match &link_source {
            Some(source) => {
                let mut from = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(source)
                    .map_err(RuntimeError::io(source))?;
                std::io::copy(&mut from, &mut f).map_err(RuntimeError::io(&target))?;
            }
            None => {
                std::io::copy(&mut entry, &mut f).map_err(RuntimeError::io(&target))?;
            }
        }
        written.insert(rel);
    }
    Ok((written.len(), skipped))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry with a raw name the `tar` crate's safe setters would refuse.
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// Guards files copied in landing root-owned in the volume of a sandbox whose user is named.
    #[test]
    fn copied_files_are_owned_by_the_numeric_user_and_a_named_user_is_refused() {
        let mut m = crate::runtime::podman::tests::manifest();
        assert_eq!(owner(&m).unwrap(), (1000, 1000));
        m.user = "1500".parse().unwrap();
        assert_eq!(owner(&m).unwrap(), (1500, 1500));
        m.user = "app".parse().unwrap();
        let refused = owner(&m).unwrap_err().to_string();
        assert!(refused.contains("user \"app\" is not numeric"), "{refused}");
    }

    #[test]
    fn hostile_entries_are_skipped_and_reported() {
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "out/", tar::EntryType::Directory, "", b"");
        raw_entry(&mut b, "out/ok.txt", tar::EntryType::Regular, "", b"ok");
        raw_entry(&mut b, "../escape.txt", tar::EntryType::Regular, "", b"bad");
        raw_entry(&mut b, "/tmp/abs.txt", tar::EntryType::Regular, "", b"bad");
        raw_entry(&mut b, "out/etc", tar::EntryType::Symlink, "/etc", b"");
        raw_entry(&mut b, "out/etc/passwd", tar::EntryType::Regular, "", b"bad");
        raw_entry(&mut b, "out/shadow", tar::EntryType::Link, "/etc/shadow", b"");
        raw_entry(&mut b, "out/copy", tar::EntryType::Link, "out/ok.txt", b"");
        raw_entry(&mut b, "out/dev", tar::EntryType::Char, "", b"");
        let bytes = b.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let (written, skipped) = extract(bytes.as_slice(), &dest).unwrap();
        assert_eq!(written, 2);
        let reasons: Vec<String> = skipped.iter().map(|s| format!("{}: {}", s.path, s.reason)).collect();
        assert_eq!(reasons, vec![
            "../escape.txt: absolute path or `..`",
            "/tmp/abs.txt: absolute path or `..`",
            "out/etc: symbolic link",
            "out/etc/passwd: a parent directory is missing or is not a plain directory",
            "out/shadow: hard link to something outside what was copied",
            "out/dev: device file",
        ]);
        assert_eq!(std::fs::read(dest.join("out/copy")).unwrap(), b"ok");
        assert!(!root.path().join("escape.txt").exists());
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("dest")]);
    }

    #[test]
    fn existing_symlinks_in_the_destination_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), dest.join("f")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "out/x", tar::EntryType::Regular, "", b"bad");
        raw_entry(&mut b, "f", tar::EntryType::Regular, "", b"bad");
        let (written, skipped) = extract(b.into_inner().unwrap().as_slice(), &dest).unwrap();
        assert_eq!((written, skipped.len()), (0, 2));
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn copy_in_archives_are_owned_by_the_sandbox_user() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), "a").unwrap();
        std::os::unix::fs::symlink("/etc", src.join("link")).unwrap();
        let (bytes, skipped) = archive(&src, 1000, 1001).unwrap();
        assert_eq!(skipped.len(), 1);
        let mut a = tar::Archive::new(bytes.as_slice());
        let owners: Vec<(String, u64, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().uid().unwrap(), e.header().gid().unwrap())
            })
            .collect();
        assert_eq!(owners, vec![("src".into(), 1000, 1001), ("src/a".into(), 1000, 1001)]);
    }
}

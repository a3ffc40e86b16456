//! Files into and out of a sandbox's volumes. Copying in sends a tar stream built here (entries
//! owned by the sandbox's uid) to `podman cp -`. Copying out reads the volume on the host
//! beneath its mountpoint ([`super::copy_out`]), never through `podman cp`, which resolves the
//! sandbox's path as root and follows a link the sandbox planted there out of the volume.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{Result, RuntimeError};
use super::copy_out::{self, Copied, Limits};
use super::naming::Instance;
use super::podman::Podman;
use crate::manifest::SandboxManifest;
use crate::model::Volume;

/// An archive entry the extractor refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The absolute path `path` names inside one of the sandbox's volumes; a relative path is
/// relative to the `workspace` volume (or the first one).
pub fn volume_path(m: &SandboxManifest, path: &str) -> Result<String> {
    Ok(locate(m, path)?.0.to_string_lossy().into_owned())
}

/// `path` cleaned to an absolute path, with the volume holding it (the innermost) and the path
/// relative to that volume's root.
fn locate<'m>(m: &'m SandboxManifest, path: &str) -> Result<(PathBuf, &'m Volume, PathBuf)> {
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
    let volume = m
        .volumes
        .iter()
        .filter(|v| clean.starts_with(v.path.as_str()))
        .max_by_key(|v| v.path.as_str().len())
        .ok_or_else(|| refuse("only paths inside the sandbox's volumes can be copied"))?;
    let rel = clean.strip_prefix(volume.path.as_str()).unwrap_or(Path::new("")).to_path_buf();
    Ok((clean, volume, rel))
}

/// Copy `path` of sandbox `m` out into the directory `dest`: read from its volume's mountpoint
/// on the host, beneath it, within `limits`.
pub fn copy_out(podman: &Podman, instance: &Instance, m: &SandboxManifest, path: &str, dest: &Path, limits: Limits) -> Result<Copied> {
    let (clean, volume, rel) = locate(m, path)?;
    let name = instance.volume(&volume.name);
    let out = podman.runner.check(&podman.cmd().args(["volume", "inspect", "--format", "{{.Mountpoint}}", &name]))?;
    let mountpoint = PathBuf::from(out.stdout_str().trim());
    if !mountpoint.is_absolute() {
        return Err(RuntimeError::Parse { command: "volume inspect".into(), message: format!("no mountpoint for volume {name}") });
    }
    let base = clean.file_name().map(ToOwned::to_owned).unwrap_or_else(|| volume.name.as_str().into());
    Ok(copy_out::copy(&mountpoint, &rel, &base, &format!("{}:{}", m.sandbox, clean.display()), dest, limits)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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

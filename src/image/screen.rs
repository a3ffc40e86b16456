//! Screening a pulled base's layers before galley uses them: every entry must stay inside the
//! image root, so nothing that unpacks the layer later (buildah for a RUN step) can be steered to
//! a host path.
//!
//! A layer is read as it streams (memory bounded by [`MAX_SYMLINKS`] and [`MAX_NAME`]) and
//! refused at its first entry that has an absolute name, a `..` component, a name through a
//! symlink made earlier in the layer, a hard link leaving the root or through a symlink, a
//! relative symlink climbing above the root, or that is a device node or FIFO. A clean verdict is
//! remembered under `$GALLEY_HOME/cache/screened/<layer hex>`, so a layer is read once per digest.

use std::collections::HashSet;
use std::path::PathBuf;

use super::cache::Cache;
use super::config::{Descriptor, Manifest};
use super::{ImageError, Store, layer};

/// The longest entry or link name accepted, in bytes (Linux's PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// The most symlinks one layer may hold (each is remembered while the layer streams).
pub const MAX_SYMLINKS: usize = 1_000_000;
/// Written into a verdict file; a change of the rules changes it, so old verdicts are not trusted.
const VERDICT: &str = "clean 1\n";

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Absolute,
    DotDot,
    ThroughSymlink(String),
    LinkOutside(String),
    Special(&'static str),
    TooLong,
    TooManySymlinks,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Absolute => write!(f, "has an absolute name"),
            Refusal::DotDot => write!(f, "has a `..` component"),
            Refusal::ThroughSymlink(link) => write!(f, "goes through the symlink `{link}` made earlier in the layer"),
            Refusal::LinkOutside(target) => write!(f, "is a link leading outside the image root (to `{target}`)"),
            Refusal::Special(kind) => write!(f, "is a {kind}, which a base layer may not hold"),
            Refusal::TooLong => write!(f, "has a name or link target longer than {MAX_NAME} bytes"),
            Refusal::TooManySymlinks => write!(f, "is one symlink more than the {MAX_SYMLINKS} a layer may hold"),
        }
    }
}

/// Screen every layer of the base `reference` (its `manifest`), each once per digest.
pub fn screen_base(cache: &Cache, store: &Store, reference: &str, manifest: &Manifest) -> Result<(), ImageError> {
    for l in &manifest.layers {
        let verdict = verdict_path(cache, l);
        if std::fs::read(&verdict).is_ok_and(|b| b == VERDICT.as_bytes()) {
            continue;
        }
        let bad = |e: std::io::Error| ImageError::Other(format!("base `{reference}`: layer {}: {e}", l.digest));
        let f = store.open_blob(&l.digest)?;
        let r = layer::decompressing_reader(&l.media_type, f).map_err(bad)?;
        if let Some((entry, why)) = screen(r).map_err(bad)? {
            return Err(ImageError::HostileBase { base: reference.into(), layer: l.digest, entry, why: why.to_string() });
        }
        if let Some(p) = verdict.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = crate::fsutil::write_atomic(&verdict, VERDICT.as_bytes());
    }
    Ok(())
}

fn verdict_path(cache: &Cache, l: &Descriptor) -> PathBuf {
    cache.dir().join("screened").join(l.digest.hex())
}

/// The first refused entry of the tar stream `r` (its name as written, and why), if any.
pub fn screen(r: impl std::io::Read) -> std::io::Result<Option<(String, Refusal)>> {
    let mut ar = tar::Archive::new(r);
    let mut symlinks: HashSet<String> = HashSet::new();
    for entry in ar.entries()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        if let Err(why) = check(&shown, entry.header().entry_type(), link.as_deref(), &mut symlinks) {
            return Ok(Some((shown, why)));
        }
    }
    Ok(None)
}

/// `name`'s components without `.` and empty ones, or why the name is refused.
fn components(name: &str) -> Result<Vec<&str>, Refusal> {
    if name.len() > MAX_NAME {
        return Err(Refusal::TooLong);
    }
    if name.starts_with('/') {
        return Err(Refusal::Absolute);
    }
    let parts: Vec<&str> = name.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if parts.contains(&"..") {
        return Err(Refusal::DotDot);
    }
    Ok(parts)
}

/// Refuse `parts` when a proper prefix of it is a symlink seen earlier.
fn through_symlink(parts: &[&str], symlinks: &HashSet<String>) -> Result<(), Refusal> {
    let mut prefix = String::new();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(c);
        if symlinks.contains(&prefix) {
            return Err(Refusal::ThroughSymlink(prefix));
        }
    }
    Ok(())
}

fn check(name: &str, ty: tar::EntryType, link: Option<&str>, symlinks: &mut HashSet<String>) -> Result<(), Refusal> {
    let parts = components(name)?;
    through_symlink(&parts, symlinks)?;
    let key = parts.join("/");
    match ty {
        tar::EntryType::Char => return Err(Refusal::Special("character device")),
        tar::EntryType::Block => return Err(Refusal::Special("block device")),
        tar::EntryType::Fifo => return Err(Refusal::Special("FIFO")),
        tar::EntryType::Link => {
            let target = link.unwrap_or_default();
            let t = components(target).map_err(|r| match r {
                Refusal::TooLong => r,
                _ => Refusal::LinkOutside(target.into()),
            })?;
            through_symlink(&t, symlinks)?;
        }
        tar::EntryType::Symlink => {
            let target = link.unwrap_or_default();
            if target.len() > MAX_NAME {
                return Err(Refusal::TooLong);
            }
            // An absolute target is resolved inside the root by whatever follows it in a
            // container; a relative one must not climb above the root from the link's directory.
            if !target.starts_with('/') {
                let mut depth = parts.len() as i64 - 1;
                for c in target.split('/').filter(|c| !c.is_empty() && *c != ".") {
                    depth += if c == ".." { -1 } else { 1 };
                    if depth < 0 {
                        return Err(Refusal::LinkOutside(target.into()));
                    }
                }
            }
            if symlinks.len() >= MAX_SYMLINKS {
                return Err(Refusal::TooManySymlinks);
            }
            symlinks.insert(key);
            return Ok(());
        }
        _ => {}
    }
    symlinks.remove(&key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_refusal(entries: &[(&str, tar::EntryType, &str)]) -> Option<(String, Refusal)> {
        let mut out = Vec::new();
        for (name, ty, link) in entries {
            let mut h = tar::Header::new_gnu();
            let n = name.as_bytes();
            h.as_old_mut().name[..n.len()].copy_from_slice(n);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*ty);
            h.set_size(0);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
        }
        out.extend_from_slice(&[0; 1024]);
        screen(out.as_slice()).unwrap()
    }

    use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

    #[test]
    fn ordinary_layers_pass() {
        let ok = [
            ("./", Directory, ""),
            ("./bin/", Directory, ""),
            ("bin/busybox", Regular, ""),
            ("bin/sh", Symlink, "/bin/busybox"),
            ("bin/ls", Symlink, "busybox"),
            ("usr/lib/x", Symlink, "../../lib/x"),
            ("bin/true", Link, "bin/busybox"),
            ("etc/.wh.old", Regular, ""),
        ];
        assert_eq!(first_refusal(&ok), None);
    }

    #[test]
    fn entries_leaving_the_root_are_refused() {
        let cases: [(&[(&str, tar::EntryType, &str)], Refusal); 8] = [
            (&[("../etc/x", Regular, "")], Refusal::DotDot),
            (&[("a/../../x", Regular, "")], Refusal::DotDot),
            (&[("/abs", Regular, "")], Refusal::Absolute),
            (&[("l", Symlink, "/"), ("l/etc/x", Regular, "")], Refusal::ThroughSymlink("l".into())),
            (&[("a/l", Symlink, "../..")], Refusal::LinkOutside("../..".into())),
            (&[("h", Link, "/etc/shadow")], Refusal::LinkOutside("/etc/shadow".into())),
            (&[("h", Link, "../x")], Refusal::LinkOutside("../x".into())),
            (&[("l", Symlink, "/"), ("h", Link, "l/etc/shadow")], Refusal::ThroughSymlink("l".into())),
        ];
        for (entries, why) in cases {
            assert_eq!(first_refusal(entries).map(|(_, w)| w), Some(why), "{entries:?}");
        }
        for (ty, kind) in [(Fifo, "FIFO"), (Char, "character device"), (Block, "block device")] {
            assert_eq!(first_refusal(&[("dev/x", ty, "")]), Some(("dev/x".into(), Refusal::Special(kind))));
        }
        // A symlink replaced by a directory no longer redirects.
        assert_eq!(first_refusal(&[("l", Symlink, "/"), ("l", Directory, ""), ("l/x", Regular, "")]), None);
    }
}

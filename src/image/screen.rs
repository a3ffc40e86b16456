//! Screening a pulled base's layers before galley uses them: every entry must stay inside the
//! image root, so nothing that unpacks the layer later (buildah for a RUN step) can be steered to
//! a host path.
//!
//! A layer is read as it streams (memory bounded by [`MAX_SYMLINKS`] and [`MAX_NAME`]) and
//! refused at its first entry that has an absolute name, a `..` component, a name through a
//! symlink made earlier in the layer, a hard link leaving the root or through a symlink, a
//! relative symlink climbing above the root, or that is a device node or FIFO.
//!
//! Layers stack: a symlink a lower layer made (and no upper layer removed, replaced or whited
//! out) still redirects an upper layer's entries, so each layer is screened with the symlinks
//! the layers below it left, and an entry through one of those is refused naming both layers. A
//! clean verdict is remembered per chain (the layer and everything below it) under
//! `$GALLEY_HOME/cache/screened/<chain hex>`, with the symlinks left at its top; the chain of a
//! bottom layer is its own digest.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::cache::Cache;
use super::config::Manifest;
use super::{ImageError, Store, layer};

/// The longest entry or link name accepted, in bytes (Linux's PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// The most symlinks one layer may hold (each is remembered while the layer streams).
pub const MAX_SYMLINKS: usize = 1_000_000;
/// Opens a verdict file; a change of the rules changes it, so old verdicts are not trusted. The
/// symlinks left at the chain's top follow as JSON.
const VERDICT: &str = "clean 2\n";

/// The symlinks in the stacked tree so far: normalised name -> the 1-based layer that made it.
pub type Links = BTreeMap<String, usize>;

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Absolute,
    DotDot,
    ThroughSymlink(String),
    /// Through a symlink a lower layer (1-based number) made.
    ThroughLowerSymlink { link: String, layer: usize },
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
            Refusal::ThroughLowerSymlink { link, layer } => {
                write!(f, "goes through the symlink `{link}` made in a lower layer (layer {layer} of the base)")
            }
            Refusal::LinkOutside(target) => write!(f, "is a link leading outside the image root (to `{target}`)"),
            Refusal::Special(kind) => write!(f, "is a {kind}, which a base layer may not hold"),
            Refusal::TooLong => write!(f, "has a name or link target longer than {MAX_NAME} bytes"),
            Refusal::TooManySymlinks => write!(f, "is one symlink more than the {MAX_SYMLINKS} a layer may hold"),
        }
    }
}

/// Screen every layer of the base `reference` (its `manifest`) over the symlinks of the layers
/// below it, each chain once.
pub fn screen_base(cache: &Cache, store: &Store, reference: &str, manifest: &Manifest) -> Result<(), ImageError> {
    let mut links = Links::new();
    let mut chain = String::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        chain = if i == 0 { l.digest.hex().to_string() } else { hex::encode(sha2::Sha256::digest(format!("{chain} {}", l.digest))) };
        let verdict = cache.dir().join("screened").join(&chain);
        if let Some(after) = read_verdict(&verdict) {
            links = after;
            continue;
        }
        let bad = |e: std::io::Error| ImageError::Other(format!("base `{reference}`: layer {}: {e}", l.digest));
        let f = store.open_blob(&l.digest)?;
        let r = layer::decompressing_reader(&l.media_type, f).map_err(bad)?;
        if let Some((entry, why)) = screen_over(r, &mut links, i + 1).map_err(bad)? {
            let why = match why {
                Refusal::ThroughLowerSymlink { link, layer } => format!(
                    "goes through the symlink `{link}` made in layer {layer} of the base ({})",
                    manifest.layers[layer - 1].digest
                ),
                why => why.to_string(),
            };
            return Err(ImageError::HostileBase { base: reference.into(), layer: l.digest, entry, why });
        }
        if let Some(p) = verdict.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let mut text = VERDICT.as_bytes().to_vec();
        text.extend(serde_json::to_vec(&links).expect("links serialize"));
        let _ = crate::fsutil::write_atomic(&verdict, &text);
    }
    Ok(())
}

/// The symlinks a clean verdict recorded, or `None` when there is no valid verdict.
fn read_verdict(path: &std::path::Path) -> Option<Links> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(bytes.strip_prefix(VERDICT.as_bytes())?).ok()
}

/// The first refused entry of the tar stream `r` (its name as written, and why), if any.
pub fn screen(r: impl std::io::Read) -> std::io::Result<Option<(String, Refusal)>> {
    screen_over(r, &mut Links::new(), 1)
}

/// [`screen`] for layer number `layer` over the `links` the layers below it left; `links` is
/// left as the layer leaves the tree.
pub fn screen_over(r: impl std::io::Read, links: &mut Links, layer: usize) -> std::io::Result<Option<(String, Refusal)>> {
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        if let Err(why) = check(&shown, entry.header().entry_type(), link.as_deref(), links, layer) {
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

/// Refuse `parts` when a proper prefix of it is a symlink seen earlier (in this layer `layer` or
/// a lower one).
fn through_symlink(parts: &[&str], symlinks: &Links, layer: usize) -> Result<(), Refusal> {
    let mut prefix = String::new();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(c);
        match symlinks.get(&prefix) {
            Some(made) if *made == layer => return Err(Refusal::ThroughSymlink(prefix)),
            Some(made) => return Err(Refusal::ThroughLowerSymlink { link: prefix, layer: *made }),
            None => {}
        }
    }
    Ok(())
}

/// Forget `key` and every symlink beneath it (the entry at `key` replaced or removed them).
fn forget(symlinks: &mut Links, key: &str) {
    symlinks.remove(key);
    if key.is_empty() {
        symlinks.clear();
        return;
    }
    let (from, to) = (format!("{key}/"), format!("{key}0"));
    let under: Vec<String> = symlinks.range(from..to).map(|(k, _)| k.clone()).collect();
    for k in under {
        symlinks.remove(&k);
    }
}

fn check(name: &str, ty: tar::EntryType, link: Option<&str>, symlinks: &mut Links, layer: usize) -> Result<(), Refusal> {
    let parts = components(name)?;
    through_symlink(&parts, symlinks, layer)?;
    let key = parts.join("/");
    // A whiteout removes what the layers below had at its name (an opaque one, everything in its
    // directory), symlinks included.
    if let Some(last) = parts.last()
        && let Some(hidden) = last.strip_prefix(".wh.")
    {
        let dir = parts[..parts.len() - 1].join("/");
        if hidden == ".wh..opq" {
            // Everything beneath `dir`, not `dir` itself (a directory, since it holds the marker).
            let link = symlinks.remove(&dir);
            forget(symlinks, &dir);
            if let (Some(made), false) = (link, dir.is_empty()) {
                symlinks.insert(dir, made);
            }
        } else {
            forget(symlinks, &if dir.is_empty() { hidden.to_owned() } else { format!("{dir}/{hidden}") });
        }
        return Ok(());
    }
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
            through_symlink(&t, symlinks, layer)?;
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
            forget(symlinks, &key);
            symlinks.insert(key, layer);
            return Ok(());
        }
        tar::EntryType::Directory => {
            // A directory over a directory merges; over a symlink it replaces the link.
            symlinks.remove(&key);
            return Ok(());
        }
        _ => {}
    }
    forget(symlinks, &key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_refusal(entries: &[(&str, tar::EntryType, &str)]) -> Option<(String, Refusal)> {
        screen(layer_of(entries).as_slice()).unwrap()
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

    fn layer_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, ty, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*ty);
            h.set_size(0);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// The first refusal of each layer in turn, over the links of those below it.
    fn stacked(layers: &[&[(&str, tar::EntryType, &str)]]) -> Vec<Option<(String, Refusal)>> {
        let mut links = Links::new();
        layers.iter().enumerate().map(|(i, l)| screen_over(layer_of(l).as_slice(), &mut links, i + 1).unwrap()).collect()
    }

    #[test]
    fn an_entry_through_a_lower_layers_symlink_is_refused_naming_that_layer() {
        let up: &[(&str, tar::EntryType, &str)] = &[("escape/etc/x", Regular, "")];
        let got = stacked(&[&[("escape", Symlink, "/")], &[("d/", Directory, "")], up]);
        assert_eq!(got[2], Some(("escape/etc/x".into(), Refusal::ThroughLowerSymlink { link: "escape".into(), layer: 1 })));
        let hard: &[(&str, tar::EntryType, &str)] = &[("h", Link, "escape/etc/shadow")];
        assert_eq!(stacked(&[&[("escape", Symlink, "/")], hard])[1].as_ref().map(|(_, w)| w.clone()), Some(Refusal::ThroughLowerSymlink { link: "escape".into(), layer: 1 }));
        // Nested under a lower directory, and a link a lower layer made relative.
        assert!(stacked(&[&[("a/b", Symlink, "../../..")]])[0].is_some(), "climbing links are refused in their own layer");
        assert!(stacked(&[&[("a/b", Symlink, "/etc")], &[("a/b/passwd", Regular, "")]])[1].is_some());
    }

    #[test]
    fn a_lower_symlink_removed_replaced_or_whited_out_no_longer_redirects() {
        let through: &[(&str, tar::EntryType, &str)] = &[("l/x", Regular, "")];
        for middle in [
            &[("l", Directory, "")][..],
            &[("l", Regular, "")],
            &[(".wh.l", Regular, "")],
            &[(".wh..wh..opq", Regular, "")],
        ] {
            let got = stacked(&[&[("l", Symlink, "/")], middle, through]);
            assert_eq!(got, vec![None, None, None], "{middle:?}");
        }
        // A whiteout of a parent directory removes the links beneath it; one elsewhere does not.
        let got = stacked(&[&[("d/l", Symlink, "/")], &[(".wh.d", Regular, "")], &[("d/l/x", Regular, "")]]);
        assert_eq!(got, vec![None, None, None]);
        let got = stacked(&[&[("d/l", Symlink, "/")], &[(".wh.dd", Regular, "")], &[("d/l/x", Regular, "")]]);
        assert!(got[2].is_some());
    }
}

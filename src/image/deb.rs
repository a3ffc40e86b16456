//! Installing a `.deb` without dpkg: its `control` paragraph (and `md5sums`) recorded where
//! scanners look (`var/lib/dpkg/status.d/<package>`, the distroless convention), the
//! `update-alternatives --install` links its `postinst` declares made as symlinks, and its data
//! archive (`data.tar.xz`, `.zst`, `.gz` or plain) turned into layer entries: paths normalised
//! (`./usr/bin` -> `usr/bin`), ownership and modes as packaged, mtimes clamped to the build's
//! epoch, symlinks and hard links kept. An entry that would leave the root (`..`, an absolute
//! path, a hard link to something the archive did not ship before it) or that is a device or a
//! FIFO is refused. Other maintainer-script effects are not reproduced (README: "Debian
//! packages").

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, Write};
use std::sync::Arc;

use super::layer::{Entry, Kind};
use crate::debian::control;

/// Largest member of a `.deb`'s control archive read into memory.
const MAX_CONTROL: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[error("package `{package}`: {message}")]
pub struct DebError {
    pub package: String,
    pub message: String,
}

/// The entries of the `.deb` in `file` (already verified against its pin), with the status
/// record and alternatives links. File contents are spilled into `spill`.
/// Top-level names the image below already has as symlinks to a directory inside it (`bin` ->
/// `usr/bin` in a merged-usr base): a package's entries under them are installed through the
/// link, as dpkg would, instead of replacing the link with a directory.
pub type Redirects = std::collections::BTreeMap<String, String>;

pub fn entries(package: &str, file: fs::File, mut spill: fs::File, epoch: u64, redirects: &Redirects) -> Result<Vec<Entry>, DebError> {
    let err = |message: String| DebError { package: package.to_owned(), message };
    let mut ar = ar::Archive::new(file);
    let mut control_files: Option<(Vec<u8>, Option<Vec<u8>>, Option<String>)> = None;
    let mut out = Vec::new();
    let mut spilled: Vec<(usize, u64, u64)> = Vec::new();
    let mut seen_data = false;
    while let Some(member) = ar.next_entry() {
        let member = member.map_err(|e| err(format!("not a Debian package: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if let Some(kind) = name.strip_prefix("control.tar") {
            let r = decompressor(kind, member).map_err(err)?;
            control_files = Some(read_control(r).map_err(|e| err(format!("{name}: {e}")))?);
        } else if let Some(kind) = name.strip_prefix("data.tar") {
            let r = decompressor(kind, member).map_err(err)?;
            data_entries(r, &mut spill, epoch, &mut out, &mut spilled).map_err(|e| err(format!("{name}: {e}")))?;
            seen_data = true;
        }
    }
    let (control, md5sums, postinst) = control_files.ok_or_else(|| err("it has no control archive".into()))?;
    if !seen_data {
        return Err(err("it has no data archive".into()));
    }
    spill.flush().map_err(|e| err(e.to_string()))?;
    spill.rewind().map_err(|e| err(e.to_string()))?;
    let spill = Arc::new(spill);
    for (i, offset, size) in spilled {
        out[i].kind = Kind::Spilled { file: spill.clone(), offset, size };
    }
    let mut out = first_of_links(redirect(out, redirects));
    let file = |path: String, bytes: Vec<u8>| Entry { path, kind: Kind::Data(Arc::new(bytes)), mode: 0o644, uid: 0, gid: 0, mtime: epoch };
    let paragraph = control::parse(&String::from_utf8_lossy(&control)).map_err(|e| err(format!("control: {e}")))?;
    let [paragraph] = paragraph.as_slice() else {
        return Err(err("its control file is not one paragraph".into()));
    };
    if paragraph.get("Package") != Some(package) {
        return Err(err(format!("its control file names package `{}`", paragraph.get("Package").unwrap_or(""))));
    }
    out.push(file(format!("var/lib/dpkg/status.d/{package}"), paragraph.to_text().into_bytes()));
    if let Some(sums) = md5sums {
        out.push(file(format!("var/lib/dpkg/status.d/{package}.md5sums"), sums));
    }
    if let Some(script) = postinst {
        out.extend(alternative_links(&script, redirects, epoch));
    }
    Ok(out)
}

/// The symlinks `LINK -> /etc/alternatives/NAME -> PATH` of each alternative `script` installs,
/// placed through the base's merged-usr links as the package's own files are.
fn alternative_links(script: &str, redirects: &Redirects, epoch: u64) -> Vec<Entry> {
    let sym = |path: String, to: String| Entry { path, kind: Kind::Symlink(to), mode: 0o777, uid: 0, gid: 0, mtime: epoch };
    let links = alternatives(script)
        .into_iter()
        .flat_map(|(link, name, target)| {
            [sym(format!("etc/alternatives/{name}"), target), sym(link.trim_start_matches('/').to_owned(), format!("/etc/alternatives/{name}"))]
        })
        .collect();
    redirect(links, redirects)
}

/// Entries under a redirected top-level name moved through its link; the directory entry that
/// would replace the link dropped.
fn redirect(entries: Vec<Entry>, redirects: &Redirects) -> Vec<Entry> {
    let through = |p: &str| -> Option<String> {
        let (top, rest) = p.split_once('/').unwrap_or((p, ""));
        let to = redirects.get(top)?;
        Some(if rest.is_empty() { to.clone() } else { format!("{to}/{rest}") })
    };
    entries
        .into_iter()
        .filter(|e| !(redirects.contains_key(&e.path) && matches!(e.kind, Kind::Dir)))
        .map(|mut e| {
            if let Some(p) = through(&e.path) {
                e.path = p;
            }
            if let Kind::Hardlink(t) = &e.kind
                && let Some(t) = through(t)
            {
                e.kind = Kind::Hardlink(t);
            }
            e
        })
        .collect()
}

/// The top-level symlinks to directories inside the root that `layers` (read in order, each
/// a tar stream) leave: the last entry of a name wins, a whiteout removes it.
pub fn top_level_dir_links(layers: Vec<Box<dyn Read + '_>>) -> std::io::Result<Redirects> {
    let mut links = Redirects::new();
    for r in layers {
        let mut tar = tar::Archive::new(r);
        for e in tar.entries()? {
            let e = e?;
            let path = clean(&e.path()?.to_string_lossy());
            if path.is_empty() || path.contains('/') {
                continue;
            }
            let whiteout = path.strip_prefix(".wh.");
            let target = e.header().entry_type().is_symlink().then(|| e.link_name().ok().flatten()).flatten();
            match (whiteout, target) {
                (Some(name), _) => {
                    links.remove(name);
                }
                (None, Some(t)) => {
                    let t = t.to_string_lossy();
                    match inside(&t) {
                        Some(t) if !t.is_empty() && !t.starts_with(&format!("{path}/")) && t != path => {
                            links.insert(path, t);
                        }
                        _ => {
                            links.remove(&path);
                        }
                    }
                }
                (None, None) => {
                    links.remove(&path);
                }
            }
        }
    }
    Ok(links)
}

/// The layer is written in path order, so of a file and its hard links the one first in that
/// order carries the content and the others link to it.
fn first_of_links(mut entries: Vec<Entry>) -> Vec<Entry> {
    let index: std::collections::HashMap<String, usize> = entries.iter().enumerate().map(|(i, e)| (e.path.clone(), i)).collect();
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for i in 0..entries.len() {
        let mut root = i;
        while let Kind::Hardlink(t) = &entries[root].kind {
            match index.get(t) {
                Some(&j) if j != root => root = j,
                _ => break,
            }
        }
        if root != i {
            groups.entry(root).or_default().push(i);
        }
    }
    for (root, links) in groups {
        let first = links.iter().copied().chain([root]).min_by(|&a, &b| super::layer::path_cmp(&entries[a].path, &entries[b].path)).unwrap_or(root);
        if first != root {
            let content = entries[root].kind.clone();
            entries[first].kind = content;
        }
        let target = entries[first].path.clone();
        for i in links.into_iter().chain([root]).filter(|&i| i != first) {
            entries[i].kind = Kind::Hardlink(target.clone());
        }
    }
    entries
}

/// A reader of `r` decompressed by its name's suffix (`.gz`, `.xz`, `.zst`, or none).
pub(super) fn decompressor<'a>(suffix: &str, r: impl Read + 'a) -> Result<Box<dyn Read + 'a>, String> {
    Ok(match suffix {
        "" => Box::new(r),
        ".gz" => Box::new(flate2::read::GzDecoder::new(r)),
        ".xz" => Box::new(xz2::read::XzDecoder::new(r)),
        ".zst" => Box::new(zstd::stream::read::Decoder::new(r).map_err(|e| e.to_string())?),
        other => return Err(format!("its archive is compressed as `{other}`, which galley cannot read")),
    })
}

type ControlFiles = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// `control`, `md5sums` and `postinst` from the control archive.
fn read_control(r: impl Read) -> std::io::Result<ControlFiles> {
    let mut tar = tar::Archive::new(r);
    let (mut control, mut md5sums, mut postinst) = (None, None, None);
    for e in tar.entries()? {
        let mut e = e?;
        let path = clean(&e.path()?.to_string_lossy());
        if !e.header().entry_type().is_file() || !["control", "md5sums", "postinst"].contains(&path.as_str()) {
            continue;
        }
        let mut bytes = Vec::new();
        e.by_ref().take(MAX_CONTROL + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_CONTROL {
            return Err(std::io::Error::other(format!("`{path}` is larger than {MAX_CONTROL} bytes")));
        }
        match path.as_str() {
            "control" => control = Some(bytes),
            "md5sums" => md5sums = Some(bytes),
            _ => postinst = Some(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
    let control = control.ok_or_else(|| std::io::Error::other("no `control` file"))?;
    Ok((control, md5sums, postinst))
}

/// The data archive's entries, file contents appended to `spill` (positions in `spilled`).
fn data_entries(
    r: impl Read,
    spill: &mut fs::File,
    epoch: u64,
    out: &mut Vec<Entry>,
    spilled: &mut Vec<(usize, u64, u64)>,
) -> Result<(), String> {
    let mut tar = tar::Archive::new(r);
    let mut offset = spill.stream_position().map_err(|e| e.to_string())?;
    let mut shipped: BTreeSet<String> = BTreeSet::new();
    for e in tar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let raw = e.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let path = inside(&raw).ok_or_else(|| format!("the entry `{raw}` leaves the image root; the package was refused"))?;
        if path.is_empty() {
            continue;
        }
        let h = e.header();
        let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
        let uid = h.uid().map_err(|e| e.to_string())? as u32;
        let gid = h.gid().map_err(|e| e.to_string())? as u32;
        let mtime = h.mtime().map_err(|e| e.to_string())?.min(epoch);
        let ty = h.entry_type();
        let link = || e.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = if ty.is_dir() {
            Kind::Dir
        } else if ty.is_symlink() {
            Kind::Symlink(link())
        } else if ty.is_hard_link() {
            let target = link();
            let to = inside(&target).filter(|t| shipped.contains(t)).ok_or_else(|| {
                format!("`{path}` is a hard link to `{target}`, which the package did not ship before it; the package was refused")
            })?;
            Kind::Hardlink(to)
        } else if ty.is_file() {
            // A small package can unpack to far more than it weighs: each file's declared size
            // (all the tar reader yields for it) is checked against the disk before it is spilled.
            let size = h.size().map_err(|e| e.to_string())?;
            crate::fsutil::ensure_free_for(spill, size).map_err(|e| format!("`{path}`: {e}"))?;
            let n = std::io::copy(&mut e, spill).map_err(|e| e.to_string())?;
            spilled.push((out.len(), offset, n));
            offset += n;
            Kind::Data(Arc::new(Vec::new()))
        } else {
            return Err(format!("`{path}` is a {ty:?}, which galley does not install from a package"));
        };
        shipped.insert(path.clone());
        out.push(Entry { path, kind, mode, uid, gid, mtime });
    }
    Ok(())
}

/// `raw` as a path relative to the root (`./usr/bin/` -> `usr/bin`), or `None` when it would
/// leave the root (`..` or an absolute path beyond `/`).
fn inside(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn clean(p: &str) -> String {
    inside(p).unwrap_or_default()
}

/// `(link, name, path)` of each `update-alternatives --install link name path priority` in a
/// maintainer script, by the literal words (a line that builds them from variables is skipped).
fn alternatives(script: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().map(|w| w.trim_end_matches('\\')).filter(|w| !w.is_empty()).collect();
        let Some(at) = words.iter().position(|w| *w == "--install") else { continue };
        if !words.iter().any(|w| w.ends_with("update-alternatives")) {
            continue;
        }
        if let [link, name, path, priority, ..] = words[at + 1..] {
            let literal = |w: &str| w.starts_with('/') && !w.contains(['$', '`', '"', '\'']);
            if literal(link) && literal(path) && !name.contains(['$', '/']) && priority.parse::<i64>().is_ok() {
                out.push((link.to_owned(), name.to_owned(), path.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_leaving_the_root_is_refused() {
        assert_eq!(inside("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(inside("/etc//x").as_deref(), Some("etc/x"));
        assert_eq!(inside("./").as_deref(), Some(""));
        assert_eq!(inside("./usr/../../etc/shadow"), None);
    }

    #[test]
    fn an_alternative_link_under_a_merged_usr_link_goes_through_it() {
        let links = Redirects::from([("bin".to_owned(), "usr/bin".to_owned())]);
        let out = alternative_links("update-alternatives --install /bin/pager pager /bin/more 50\n", &links, 0);
        let paths: Vec<(&str, &Kind)> = out.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(matches!(paths[0], ("etc/alternatives/pager", Kind::Symlink(t)) if t == "/bin/more"), "{paths:?}");
        assert!(matches!(paths[1], ("usr/bin/pager", Kind::Symlink(t)) if t == "/etc/alternatives/pager"), "{paths:?}");
    }

    #[test]
    fn entries_under_a_merged_usr_link_go_through_it() {
        let e = |path: &str, kind: Kind| Entry { path: path.into(), kind, mode: 0o755, uid: 0, gid: 0, mtime: 0 };
        let links = Redirects::from([("bin".to_owned(), "usr/bin".to_owned())]);
        let out = redirect(vec![e("bin", Kind::Dir), e("bin/dash", Kind::Data(Arc::new(vec![]))), e("bin/sh", Kind::Hardlink("bin/dash".into())), e("usr", Kind::Dir)], &links);
        let paths: Vec<&str> = out.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr/bin/dash", "usr/bin/sh", "usr"]);
        assert!(matches!(&out[1].kind, Kind::Hardlink(t) if t == "usr/bin/dash"));

        let mut b = tar::Builder::new(Vec::new());
        for (name, target) in [("bin", "usr/bin"), ("lib", "/usr/lib"), ("loop", "loop/x"), ("up", "../..")] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        let layer = b.into_inner().unwrap();
        let found = top_level_dir_links(vec![Box::new(&layer[..])]).unwrap();
        assert_eq!(found, Redirects::from([("bin".to_owned(), "usr/bin".to_owned()), ("lib".to_owned(), "usr/lib".to_owned())]));
    }

    #[test]
    fn alternatives_come_from_literal_install_lines_only() {
        let script = "#!/bin/sh\nupdate-alternatives --install /usr/bin/pager pager /bin/more 50 \\\n  --slave /x y /z\nupdate-alternatives --install $LINK pager /bin/less 77\nupdate-alternatives --remove pager /bin/more\n";
        assert_eq!(alternatives(script), [("/usr/bin/pager".to_owned(), "pager".to_owned(), "/bin/more".to_owned())]);
    }

    /// A hostile package: a data archive entry climbing out of the root is refused.
    #[test]
    fn data_entry_leaving_the_root_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..17].copy_from_slice(b"./../../etc/evil\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let spill = tempfile::tempfile().unwrap();
        let mut spill = spill;
        let e = data_entries(&bytes[..], &mut spill, 0, &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.contains("leaves the image root"), "{e}");
    }
}

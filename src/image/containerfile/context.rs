//! A Containerfile build's context: the files under the context directory that
//! `.containerignore` (else `.dockerignore`) keeps, never `.git` or `galley.lock` at the project
//! root; their input digest; and the snapshot copy buildah builds from, so no step can reach the
//! project itself. The digest and the snapshot are made from the same file list.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::super::walk::{Found, input_err, walk_filtered};
use super::super::ImageError;
use crate::domain::Digest;

/// The ignore files read from the context's root, the first one found wins.
pub const IGNORE_FILES: &[&str] = &[".containerignore", ".dockerignore"];
/// The largest ignore file galley reads, in bytes.
const MAX_IGNORE: u64 = 1 << 20;

/// One pattern of an ignore file.
#[derive(Debug, Clone)]
struct Pattern {
    negated: bool,
    segments: Vec<String>,
}

/// The patterns of the context's ignore file, in order (the last match decides).
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Read the ignore file of `context`, if any.
    pub fn read(context: &Path) -> Result<Ignore, ImageError> {
        for name in IGNORE_FILES {
            let path = context.join(name);
            let Ok(meta) = fs::metadata(&path) else { continue };
            if meta.len() > MAX_IGNORE {
                return Err(ImageError::Input { path, message: format!("is over galley's limit of {MAX_IGNORE} bytes") });
            }
            let text = fs::read_to_string(&path).map_err(|e| input_err(&path, e))?;
            return Ok(Ignore::parse(&text));
        }
        Ok(Ignore::default())
    }

    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negated, p) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let segments = p.split('/').filter(|s| !s.is_empty() && *s != ".").map(str::to_owned).collect();
                Pattern { negated, segments }
            })
            .filter(|p| !p.segments.is_empty())
            .collect();
        Ignore { patterns }
    }

    /// Whether the context leaves out `rel` (`/`-separated): the last pattern that matches it
    /// or one of its parent directories decides.
    pub fn excludes(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for p in &self.patterns {
            if (1..=parts.len()).any(|n| matches(&p.segments, &parts[..n])) {
                excluded = !p.negated;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.negated)
    }
}

/// Whether path segments `path` match pattern segments `pat` (`**` any number of segments).
fn matches(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| matches(rest, &path[i..])),
        Some((p, rest)) => path.split_first().is_some_and(|(s, more)| glob(p.as_bytes(), s.as_bytes()) && matches(rest, more)),
    }
}

/// One segment against a glob: `*`, `?`, `[...]` (with `!` or `^` negation and ranges), `\`
/// escapes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().skip(1).position(|&c| c == b']').map(|e| e + 1) else {
                return s.first() == Some(&b'[') && glob(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let mut class = &p[1..end];
            let negated = matches!(class.first(), Some(b'!' | b'^'));
            if negated {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && glob(&p[end + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

/// Every entry of the context that `ignore` keeps, in sorted walk order. `at_project_root`:
/// the context is the project directory, whose `.git` and `galley.lock` are never part of it
/// (the lock records the build's output; hashing it in would be circular).
pub(crate) fn files(context: &Path, ignore: &Ignore, at_project_root: bool) -> Result<Vec<Found>, ImageError> {
    let prune = !ignore.has_exceptions();
    let keep = |parent: &str, name: &str| {
        if at_project_root && parent.is_empty() && (name == ".git" || name == crate::lang::LOCK_FILE) {
            return false;
        }
        let rel = if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") };
        !(prune && ignore.excludes(&rel))
    };
    let found = walk_filtered(context, &keep)?;
    let kept: Vec<Found> = if prune { found } else { found.into_iter().filter(|f| !ignore.excludes(&f.rel)).collect() };
    for f in &kept {
        let ft = f.meta.file_type();
        if !(ft.is_file() || ft.is_dir() || ft.is_symlink()) {
            return Err(ImageError::Input {
                path: f.path.clone(),
                message: "is not a file, directory or symbolic link, which a build context cannot hold\nhelp: list it in the context's .containerignore".into(),
            });
        }
    }
    Ok(kept)
}

/// The input digest of the context's `files`: each entry's path and kind, a file's executable
/// bit and content (through `hash`), a link's target. Nothing else of an entry reaches the
/// snapshot, so nothing else is an input.
pub(crate) fn digest(files: &[Found], hash: &(dyn Fn(&Path, &fs::Metadata) -> Result<Digest, ImageError> + Sync)) -> Result<Digest, ImageError> {
    let parts: Vec<Vec<u8>> = files
        .par_iter()
        .map(|f| -> Result<Vec<u8>, ImageError> {
            let ft = f.meta.file_type();
            let mut part = Vec::new();
            let mut field = |tag: &[u8], bytes: &[u8]| {
                part.extend_from_slice(tag);
                part.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                part.extend_from_slice(bytes);
            };
            if ft.is_symlink() {
                let target = fs::read_link(&f.path).map_err(|e| input_err(&f.path, e))?;
                field(b"l", f.rel.as_bytes());
                field(b"t", target.as_os_str().as_encoded_bytes());
            } else if ft.is_dir() {
                field(b"d", f.rel.as_bytes());
            } else {
                field(if executable(&f.meta) { b"x" } else { b"f" }, f.rel.as_bytes());
                field(b"c", hash(&f.path, &f.meta)?.to_string().as_bytes());
            }
            Ok(part)
        })
        .collect::<Result<_, _>>()?;
    let mut h = Sha256::new();
    h.update(b"galley context 1\0");
    for p in parts {
        h.update(p);
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

/// The bits of `mode` the process umask keeps when a file is created with it.
fn umask_kept(mode: u32) -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // Reading the umask means setting it: done once, put straight back.
    let umask = *UMASK.get_or_init(|| unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    });
    mode & !umask
}

fn executable(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// Copy `files` (from the context) into the empty directory `dest`: directories 0755, files
/// 0755 or 0644 by their executable bit (so neither the umask nor other mode bits reach the
/// build), links as links. Copies, never hard links: a step that writes to its context writes
/// to the copy.
pub(crate) fn snapshot(files: &[Found], dest: &Path) -> Result<(), ImageError> {
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(|e| input_err(dest, e))?;
    for f in files.iter().filter(|f| f.meta.is_dir()) {
        let d = dest.join(&f.rel);
        fs::create_dir(&d).map_err(|e| input_err(&d, e))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| input_err(&d, e))?;
    }
    umask_kept(0); // read before the copies run in parallel
    files.par_iter().filter(|f| !f.meta.is_dir()).try_for_each(|f| -> Result<(), ImageError> {
        let d = dest.join(&f.rel);
        if f.meta.file_type().is_symlink() {
            let target = fs::read_link(&f.path).map_err(|e| input_err(&f.path, e))?;
            std::os::unix::fs::symlink(&target, &d).map_err(|e| input_err(&d, e))
        } else {
            // Created with its final mode: one file made and filled, no chmod after it.
            let mode = if executable(&f.meta) { 0o755 } else { 0o644 };
            let mut src = fs::File::open(&f.path).map_err(|e| input_err(&f.path, e))?;
            let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&d).map_err(|e| input_err(&d, e))?;
            std::io::copy(&mut src, &mut dst).map_err(|e| input_err(&d, e))?;
            if mode & !umask_kept(mode) != 0 {
                fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(|e| input_err(&d, e))?;
            }
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_patterns_follow_the_containerignore_rules() {
        let i = Ignore::parse("# comment\nnode_modules\n*.log\n!keep.log\nbuild/**/tmp\n/secret[0-9].txt\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/a/b.js"), "a directory's contents go with it");
        assert!(!i.excludes("src/node_modules"), "patterns are anchored at the context root");
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("keep.log"), "a later exception wins");
        assert!(!i.excludes("sub/a.log"), "`*` does not cross `/`");
        assert!(i.excludes("build/tmp") && i.excludes("build/x/y/tmp/z"));
        assert!(i.excludes("secret1.txt") && !i.excludes("secretx.txt"));
        assert!(!i.excludes("src/main.rs"));
        assert!(Ignore::parse("**/*.o\n").excludes("a/b/c.o"));
    }

    #[test]
    fn the_digest_sees_content_exec_bits_and_names_but_not_mtimes() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "1").unwrap();
        fs::write(d.path().join("b.log"), "log").unwrap();
        let hash = |p: &Path, _: &fs::Metadata| -> Result<Digest, ImageError> { Ok(Digest::of(&fs::read(p).unwrap())) };
        let ignore = Ignore::parse("*.log\n");
        let first = digest(&files(d.path(), &ignore, true).unwrap(), &hash).unwrap();
        fs::write(d.path().join("b.log"), "other").unwrap();
        fs::write(d.path().join(crate::lang::LOCK_FILE), "{}").unwrap();
        assert_eq!(digest(&files(d.path(), &ignore, true).unwrap(), &hash).unwrap(), first, "ignored files are no input");
        fs::set_permissions(d.path().join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        let exec = digest(&files(d.path(), &ignore, true).unwrap(), &hash).unwrap();
        assert_ne!(exec, first);
        let snap = tempfile::tempdir().unwrap();
        snapshot(&files(d.path(), &ignore, true).unwrap(), snap.path()).unwrap();
        assert_eq!(fs::read(snap.path().join("a")).unwrap(), b"1");
        assert!(!snap.path().join("b.log").exists() && !snap.path().join(crate::lang::LOCK_FILE).exists());
        assert_eq!(fs::metadata(snap.path().join("a")).unwrap().permissions().mode() & 0o7777, 0o755);
    }
}

//! A Containerfile build's context: the files under the context directory that
//! `.containerignore` (else `.dockerignore`) keeps, never `.git` or `galley.lock` at the project
//! root; their input digest; and the snapshot copy buildah builds from, so no step can reach the
//! project itself. The digest and the snapshot are made from the same file list.

use std::fs;
use std::io::Read as _;
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
    segments: Vec<Segment>,
}

/// One `/`-separated part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of path segments.
    AnyDepth,
    /// A glob matching exactly one path segment.
    Glob(Vec<Token>),
}

/// One token of a segment's glob: `*`, `?`, a `[...]` class (with `!` or `^` negation and
/// ranges), or a byte (`\` escapes the next one).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Class { negated: bool, set: Vec<u8> },
    Byte(u8),
}

impl Token {
    /// The tokens of one segment's glob. A `[` with no `]` after it is a plain `[`.
    fn parse(p: &[u8]) -> Vec<Token> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let (token, len) = match p[i] {
                b'*' => (Token::Star, 1),
                b'?' => (Token::Any, 1),
                b'[' => match p[i + 1..].iter().position(|&c| c == b']') {
                    Some(close) => {
                        let class = &p[i + 1..i + 1 + close];
                        let negated = matches!(class.first(), Some(b'!' | b'^'));
                        let set = if negated { &class[1..] } else { class };
                        (Token::Class { negated, set: set.to_vec() }, close + 2)
                    }
                    None => (Token::Byte(b'['), 1),
                },
                b'\\' if i + 1 < p.len() => (Token::Byte(p[i + 1]), 2),
                c => (Token::Byte(c), 1),
            };
            out.push(token);
            i += len;
        }
        out
    }

    /// Whether this token, other than `*`, takes the byte `c`.
    fn takes(&self, c: u8) -> bool {
        match self {
            Token::Star => false,
            Token::Any => true,
            Token::Byte(b) => *b == c,
            Token::Class { negated, set } => {
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != *negated
            }
        }
    }
}

/// The patterns of the context's ignore file, in order (the last match decides).
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Read the ignore file of `context` (a directory of the project `project_dir`), if any: a
    /// regular file inside the project, within [`MAX_IGNORE`].
    pub fn read(project_dir: &Path, context: &Path) -> Result<Ignore, ImageError> {
        use crate::fsutil::ReadError;
        for name in IGNORE_FILES {
            let path = context.join(name);
            let bytes = match crate::fsutil::read_beneath(project_dir, &path, MAX_IGNORE) {
                Ok(bytes) => bytes,
                Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(ReadError::Io(e)) => return Err(input_err(&path, e)),
                Err(other) => return Err(ImageError::Input { path, message: other.to_string() }),
            };
            let text = String::from_utf8(bytes)
                .map_err(|e| ImageError::Input { path, message: format!("is not UTF-8 (byte {})", e.utf8_error().valid_up_to()) })?;
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
                let segments = p
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(|s| if s == "**" { Segment::AnyDepth } else { Segment::Glob(Token::parse(s.as_bytes())) })
                    .collect();
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
fn matches(pat: &[Segment], path: &[&str]) -> bool {
    wildcard(pat, path, |s| *s == Segment::AnyDepth, |s, name| match s {
        Segment::AnyDepth => false,
        Segment::Glob(tokens) => glob(tokens, name.as_bytes()),
    })
}

/// One segment against its glob's tokens.
fn glob(tokens: &[Token], s: &[u8]) -> bool {
    wildcard(tokens, s, |t| *t == Token::Star, |t, c| t.takes(*c))
}

/// Whether `items` match `pat`, whose star tokens take any number of items and every other
/// token exactly one (`takes`). On a mismatch the last star seen takes one more item and the
/// match goes on after it: earlier stars never need to take more, so the time is at most the
/// product of the two lengths, where trying every split for every star is exponential in
/// stars (a hostile ignore file's `*a*a*a…b`, or `**/**/…`).
fn wildcard<P, S>(pat: &[P], items: &[S], star: impl Fn(&P) -> bool, takes: impl Fn(&P, &S) -> bool) -> bool {
    let (mut p, mut i) = (0, 0);
    // The pattern position after the last star, and the items it has taken up to.
    let mut last_star: Option<(usize, usize)> = None;
    while i < items.len() {
        match pat.get(p) {
            Some(t) if star(t) => {
                last_star = Some((p + 1, i));
                p += 1;
            }
            Some(t) if takes(t, &items[i]) => {
                p += 1;
                i += 1;
            }
            _ => match last_star {
                Some((after, taken)) => {
                    last_star = Some((after, taken + 1));
                    (p, i) = (after, taken + 1);
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(star)
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
            // The copy holds the bytes the walk measured (and the digest hashed), never more: a
            // file that changed size since is refused rather than built unlike its digest.
            let changed = || ImageError::Input { path: f.path.clone(), message: "changed while galley read the build context\nhelp: run the build again once nothing writes to the context".into() };
            let src = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&f.path).map_err(|e| input_err(&f.path, e))?;
            if src.metadata().map_err(|e| input_err(&f.path, e))?.len() != f.meta.len() {
                return Err(changed());
            }
            let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&d).map_err(|e| input_err(&d, e))?;
            let copied = std::io::copy(&mut src.take(f.meta.len() + 1), &mut dst).map_err(|e| input_err(&d, e))?;
            if copied != f.meta.len() {
                return Err(changed());
            }
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
        assert!(Ignore::parse("a/**/**/b\n").excludes("a/b") && Ignore::parse("a/**/b\n").excludes("a/x/y/b"));
        assert!(!Ignore::parse("a/**/b\n").excludes("a/x/c"));
    }

    #[test]
    fn globs_match_stars_classes_and_escapes_as_before() {
        let g = |p: &str, s: &str| glob(&Token::parse(p.as_bytes()), s.as_bytes());
        assert!(g("*", "") && g("*", "abc") && g("a*c", "abbbc") && g("a*c", "ac") && !g("a*c", "acb"));
        assert!(g("*a*b", "xaxxb") && !g("*a*b", "xbxa") && g("a*b*c*", "aXbYcZ"));
        assert!(g("?.rs", "a.rs") && !g("?.rs", ".rs") && !g("?", ""));
        assert!(g("[a-c]x", "bx") && !g("[a-c]x", "dx") && g("[!a-c]x", "dx") && g("[^a]", "b") && !g("[^a]", "a"));
        assert!(!g("[]", "[]") && !g("[]x", "x"), "an empty class takes nothing");
        assert!(g("[ab", "[ab") && !g("[ab", "a"), "a `[` without `]` is a plain `[`");
        assert!(g("\\*", "*") && !g("\\*", "a") && g("a\\", "a\\"), "`\\` escapes; at the end it is itself");
    }

    /// The attack: a pull request's ignore file whose patterns make a backtracking match try
    /// every split of a long name among many stars (`*a*a…*b` against `aaa…a`), or of a deep
    /// path among many `**`, which hung the context walk of `galley lock` and of a build.
    #[test]
    fn a_hostile_ignore_file_of_many_stars_is_matched_in_polynomial_time() {
        let stars = format!("{}b", "*a".repeat(40));
        let name = "a".repeat(250);
        let deep = ["x"; 200].join("/");
        let any_depth = format!("{}y", "**/".repeat(40));
        let start = std::time::Instant::now();
        assert!(!Ignore::parse(&stars).excludes(&name));
        assert!(!Ignore::parse(&any_depth).excludes(&deep));
        assert!(Ignore::parse(&any_depth).excludes(&format!("{deep}/y")));
        let took = start.elapsed();
        eprintln!("hostile patterns matched in {took:?}");
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }

    /// The attack: a context whose ignore file is a FIFO, which hung the walk waiting for a
    /// writer, or a link to a host file.
    #[test]
    fn an_ignore_file_is_read_only_as_a_regular_file_inside_the_context() {
        let d = tempfile::tempdir().unwrap();
        let fifo = std::ffi::CString::new(d.path().join(".containerignore").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = Ignore::read(d.path(), d.path()).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("ignore"), "*\n").unwrap();
        let linked = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("ignore"), linked.path().join(".dockerignore")).unwrap();
        let e = Ignore::read(linked.path(), linked.path()).unwrap_err().to_string();
        assert!(e.contains("leads out of the project"), "{e}");
        fs::write(linked.path().join(".containerignore"), "*.log\n").unwrap();
        assert!(Ignore::read(linked.path(), linked.path()).unwrap().excludes("a.log"), "the first ignore file found wins");
    }

    /// A context file that grows or shrinks between the walk (whose sizes the digest hashed)
    /// and the snapshot is refused, never copied unlike its digest.
    #[test]
    fn a_file_that_changed_size_since_the_walk_is_refused_by_the_snapshot() {
        for change in [b"alpha and more\n".as_slice(), b"a".as_slice()] {
            let d = tempfile::tempdir().unwrap();
            fs::write(d.path().join("a.txt"), "alpha\n").unwrap();
            let found = files(d.path(), &Ignore::default(), false).unwrap();
            fs::write(d.path().join("a.txt"), change).unwrap();
            let dest = tempfile::tempdir().unwrap();
            let e = snapshot(&found, dest.path()).unwrap_err().to_string();
            assert!(e.contains("changed while galley read the build context"), "{e}");
        }
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.txt"), "alpha\n").unwrap();
        let dest = tempfile::tempdir().unwrap();
        snapshot(&files(d.path(), &Ignore::default(), false).unwrap(), dest.path()).unwrap();
        assert_eq!(fs::read(dest.path().join("a.txt")).unwrap(), b"alpha\n");
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

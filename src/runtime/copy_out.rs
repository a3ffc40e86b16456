//! Copying out of a sandbox's volume: read on the host beneath the volume's mountpoint through
//! file descriptors, never through a path podman resolves as root. Every step is a no-follow
//! open relative to the directory above, so a symlink the sandbox plants anywhere (the requested
//! path itself included) is refused or skipped, never followed out of the volume. The tree is
//! written into a hidden staging directory beside the destination and renamed into place at the
//! end; caps on bytes, entries, depth and path length stop the copy as it walks, and holes (and
//! runs of zeros) are seeked over, not written.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::cp::Skipped;
use crate::env_vars;

/// Default cap on the bytes of file data read from the sandbox (holes are free): 8 GiB.
pub const MAX_BYTES: u64 = 8 << 30;
/// Default cap on the number of entries (files, directories, skipped entries): one million.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Default cap on directory depth below the copied path.
pub const MAX_DEPTH: u64 = 4_096;
/// Default cap on an entry's path length in bytes, relative to the copied path's parent.
pub const MAX_PATH_BYTES: u64 = 65_536;

/// What one copy may take from the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bytes: u64,
    pub entries: u64,
    pub depth: u64,
    pub path_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { bytes: MAX_BYTES, entries: MAX_ENTRIES, depth: MAX_DEPTH, path_bytes: MAX_PATH_BYTES }
    }
}

/// One of the caps, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Bytes,
    Entries,
    Depth,
    PathBytes,
}

impl Cap {
    const ALL: [Cap; 4] = [Cap::Bytes, Cap::Entries, Cap::Depth, Cap::PathBytes];

    /// The setting that overrides it.
    pub fn setting(self) -> &'static str {
        match self {
            Cap::Bytes => env_vars::GALLEY_CP_MAX_BYTES,
            Cap::Entries => env_vars::GALLEY_CP_MAX_ENTRIES,
            Cap::Depth => env_vars::GALLEY_CP_MAX_DEPTH,
            Cap::PathBytes => env_vars::GALLEY_CP_MAX_PATH_BYTES,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Cap::Bytes => "bytes of file data",
            Cap::Entries => "entries",
            Cap::Depth => "levels of directories",
            Cap::PathBytes => "bytes of path",
        }
    }

    fn slot(self, l: &mut Limits) -> &mut u64 {
        match self {
            Cap::Bytes => &mut l.bytes,
            Cap::Entries => &mut l.entries,
            Cap::Depth => &mut l.depth,
            Cap::PathBytes => &mut l.path_bytes,
        }
    }
}

impl Limits {
    /// The defaults with each cap its setting names replaced; `get` reads the environment.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Limits, CopyError> {
        let mut limits = Limits::default();
        for cap in Cap::ALL {
            if let Some(value) = get(cap.setting()) {
                let n = value.trim().parse::<u64>().ok().filter(|n| *n > 0);
                *cap.slot(&mut limits) = n.ok_or(CopyError::Setting { cap, value })?;
            }
        }
        Ok(limits)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{name} is \"{value}\", not a positive whole number", name = cap.setting())]
    Setting { cap: Cap, value: String },
    #[error("cannot copy {path} out of the sandbox: `{link}` is a symbolic link, and galley cp follows no link in the source path")]
    Link { path: String, link: String },
    #[error("cannot copy {path} out of the sandbox: `{at}` is not a directory")]
    NotDirectory { path: String, at: String },
    #[error("cannot copy {path} out of the sandbox: it is not a regular file or directory")]
    Special { path: String },
    #[error("copy stopped at {at}: the sandbox sent more than {limit} {what} (the cap {name}); nothing was written", what = cap.what(), name = cap.setting())]
    Limit { cap: Cap, limit: u64, at: String },
    #[error("{} already exists; galley cp never merges into or replaces what is there", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl CopyError {
    pub fn help(&self) -> Option<String> {
        match self {
            CopyError::Setting { .. } => Some("set it to a positive whole number, or unset it for the default".into()),
            CopyError::Link { .. } => Some("copy the path the link points to, named as a path inside the volume".into()),
            CopyError::Limit { cap, limit, .. } => {
                Some(format!("if the sandbox's files are really that large, raise the cap: {}={}", cap.setting(), limit.saturating_mul(4)))
            }
            CopyError::Exists { .. } => Some("remove it, or copy into another destination".into()),
            _ => None,
        }
    }
}

type Result<T, E = CopyError> = std::result::Result<T, E>;

/// What a finished copy did.
#[derive(Debug, Default)]
pub struct Copied {
    /// Regular files written.
    pub files: usize,
    /// File data read from the sandbox, holes excluded.
    pub bytes: u64,
    pub skipped: Vec<Skipped>,
}

/// Copy `rel` (relative, normal components only; empty for the volume itself) from the volume
/// mounted on the host at `mountpoint` into the directory `dest` (created when missing), under
/// its base name `name`. `shown` names the source in messages. Either everything lands or
/// nothing does.
pub fn copy(mountpoint: &Path, rel: &Path, name: &OsStr, shown: &str, dest: &Path, limits: Limits) -> Result<Copied> {
    raise_open_files();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CopyError::Io { path, source }
    };
    let root = open_dir_path(mountpoint).map_err(io(mountpoint))?;
    // Walk to the parent of the source, refusing a link or non-directory at any step.
    let mut parent = root;
    let mut walked = PathBuf::new();
    let components: Vec<&OsStr> = rel.iter().collect();
    let (last, dirs) = match components.split_last() {
        Some((last, dirs)) => (Some(*last), dirs),
        None => (None, &[][..]),
    };
    for c in dirs {
        walked.push(c);
        // O_DIRECTORY answers ENOTDIR for a link too: ask what it is to say which.
        parent = open_beneath(&parent, c, libc::O_DIRECTORY).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) if stat_beneath(&parent, c).ok() == Some(libc::S_IFLNK) => {
                CopyError::Link { path: shown.into(), link: walked.display().to_string() }
            }
            Some(libc::ENOTDIR) => CopyError::NotDirectory { path: shown.into(), at: walked.display().to_string() },
            _ => CopyError::Io { path: mountpoint.join(&walked), source: e },
        })?;
    }
    let (dest_dir, final_path) = (dest.to_path_buf(), dest.join(name));
    if std::fs::symlink_metadata(&final_path).is_ok() {
        return Err(CopyError::Exists { path: final_path });
    }
    let dest_exists = dest_dir.is_dir();
    let stage_in = if dest_exists { dest_dir.clone() } else { parent_of(&dest_dir) };
    let stage = tempfile::Builder::new().prefix(".galley-cp-").tempdir_in(&stage_in).map_err(io(&stage_in))?;
    let stage_dir = open_dir_path(stage.path()).map_err(io(stage.path()))?;
    let mut walk = Walk { limits, copied: Copied::default(), entries: 0, buf: vec![0; CHUNK], stage: stage.path().to_path_buf() };
    let top = Rc::new(Rel { parent: None, name: name.to_owned(), len: name.len() as u64, depth: 1 });
    let kind = match last {
        Some(last) => stat_beneath(&parent, last).map_err(io(&mountpoint.join(rel)))?,
        None => std::fs::metadata(mountpoint).map_err(io(mountpoint))?.mode() & libc::S_IFMT,
    };
    match kind {
        libc::S_IFLNK => return Err(CopyError::Link { path: shown.into(), link: rel.display().to_string() }),
        libc::S_IFDIR => {
            let src = match last {
                Some(last) => open_beneath(&parent, last, libc::O_DIRECTORY).map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP | libc::ENOTDIR) => CopyError::Link { path: shown.into(), link: rel.display().to_string() },
                    _ => CopyError::Io { path: mountpoint.join(rel), source: e },
                })?,
                None => parent,
            };
            walk.count(&top)?;
            walk.tree(src, &stage_dir, top)?;
        }
        libc::S_IFREG => {
            walk.count(&top)?;
            if let Some(last) = last {
                walk.file(&parent, last, &stage_dir, &top)?;
            }
        }
        _ => return Err(CopyError::Special { path: shown.into() }),
    }
    let staged = stage.path().join(name);
    if dest_exists {
        rename_noreplace(&staged, &final_path)?;
    } else {
        let _ = std::fs::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o755));
        rename_noreplace(stage.path(), &dest_dir)?;
        let _ = stage.keep();
    }
    walk.copied.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.copied)
}

/// Bytes read and written at a time.
const CHUNK: usize = 128 * 1024;

/// An entry's path relative to the destination, as a chain so deep trees cost no more than
/// their length.
struct Rel {
    parent: Option<Rc<Rel>>,
    name: OsString,
    len: u64,
    depth: u64,
}

impl Rel {
    fn child(self: &Rc<Rel>, name: &OsStr) -> Rel {
        Rel { parent: Some(self.clone()), name: name.to_owned(), len: self.len + 1 + name.len() as u64, depth: self.depth + 1 }
    }

    fn display(&self) -> String {
        let mut names = vec![&self.name];
        let mut at = self.parent.as_deref();
        while let Some(p) = at {
            names.push(&p.name);
            at = p.parent.as_deref();
        }
        names.iter().rev().map(|n| n.to_string_lossy()).collect::<Vec<_>>().join("/")
    }
}

/// A directory still to copy: its name under a source and a destination directory.
struct Pending {
    src: Rc<OwnedFd>,
    dst: Rc<OwnedFd>,
    rel: Rc<Rel>,
}

struct Walk {
    limits: Limits,
    copied: Copied,
    entries: u64,
    buf: Vec<u8>,
    /// The staging directory, whose file system's free space is checked before a large file.
    stage: PathBuf,
}

/// A file whose data takes at least this many bytes has the destination's free space checked
/// first (`fsutil::ensure_free`), so a full disk is named before the write, not half way.
pub const FREE_CHECK_FROM: u64 = 1 << 20;

impl Walk {
    fn limit(&self, cap: Cap, limit: u64, rel: &Rel) -> CopyError {
        CopyError::Limit { cap, limit, at: rel.display() }
    }

    /// Count one entry against the entry, depth and path caps.
    fn count(&mut self, rel: &Rel) -> Result<()> {
        self.entries += 1;
        let l = self.limits;
        if self.entries > l.entries {
            return Err(self.limit(Cap::Entries, l.entries, rel));
        }
        if rel.depth > l.depth {
            return Err(self.limit(Cap::Depth, l.depth, rel));
        }
        if rel.len > l.path_bytes {
            return Err(self.limit(Cap::PathBytes, l.path_bytes, rel));
        }
        Ok(())
    }

    fn skip(&mut self, rel: &Rel, reason: &str) {
        self.copied.skipped.push(Skipped { path: rel.display(), reason: reason.into() });
    }

    /// Copy the directory `src` into a new directory `rel` made under `dst_parent`, depth first
    /// with an explicit stack; a directory's descriptor stays open only while children of it wait.
    fn tree(&mut self, src: OwnedFd, dst_parent: &OwnedFd, rel: Rc<Rel>) -> Result<()> {
        let dst = self.make_dir(dst_parent, &src, &rel)?;
        let mut stack = Vec::new();
        self.list(Rc::new(src), Rc::new(dst), &rel, &mut stack)?;
        while let Some(Pending { src: parent_src, dst: parent_dst, rel }) = stack.pop() {
            let src = match open_beneath(&parent_src, &rel.name, libc::O_DIRECTORY) {
                Ok(src) => src,
                // Swapped for a link or a file since it was listed.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    self.skip(&rel, "symbolic link");
                    continue;
                }
                Err(e) => return Err(self.io(&rel, e)),
            };
            let dst = self.make_dir(&parent_dst, &src, &rel)?;
            drop((parent_src, parent_dst));
            self.list(Rc::new(src), Rc::new(dst), &rel, &mut stack)?;
        }
        Ok(())
    }

    /// Copy the files of the directory `src` into `dst`; push its directories onto `stack`.
    fn list(&mut self, src: Rc<OwnedFd>, dst: Rc<OwnedFd>, rel: &Rc<Rel>, stack: &mut Vec<Pending>) -> Result<()> {
        let listing = std::fs::read_dir(fd_path(&src)).map_err(|e| self.io(rel, e))?;
        for entry in listing {
            let name = entry.map_err(|e| self.io(rel, e))?.file_name();
            let child = Rc::new(rel.child(&name));
            self.count(&child)?;
            match stat_beneath(&src, &name).map_err(|e| self.io(&child, e))? {
                libc::S_IFDIR => stack.push(Pending { src: src.clone(), dst: dst.clone(), rel: child }),
                libc::S_IFREG => self.file(&src, &name, &dst, &child)?,
                libc::S_IFLNK => self.skip(&child, "symbolic link"),
                libc::S_IFIFO => self.skip(&child, "fifo"),
                libc::S_IFCHR | libc::S_IFBLK => self.skip(&child, "device file"),
                _ => self.skip(&child, "not a regular file or directory"),
            }
        }
        Ok(())
    }

    fn io(&self, rel: &Rel, source: std::io::Error) -> CopyError {
        CopyError::Io { path: PathBuf::from(rel.display()), source }
    }

    /// A new directory `rel.name` under `dst_parent`, with the mode of `src` (owner always rwx).
    fn make_dir(&self, dst_parent: &OwnedFd, src: &OwnedFd, rel: &Rel) -> Result<OwnedFd> {
        let name = cstr(&rel.name);
        // SAFETY: valid descriptor and NUL-terminated name.
        if unsafe { libc::mkdirat(dst_parent.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
            return Err(self.io(rel, std::io::Error::last_os_error()));
        }
        let dst = open_beneath(dst_parent, &rel.name, libc::O_DIRECTORY).map_err(|e| self.io(rel, e))?;
        let mode = fstat_mode(src).map_err(|e| self.io(rel, e))?;
        // SAFETY: fchmod on a valid descriptor; a failure leaves the owner-only mode.
        unsafe { libc::fchmod(dst.as_raw_fd(), ((mode & 0o777) | 0o700) as libc::mode_t) };
        Ok(dst)
    }

    /// Copy the regular file `name` of `src_dir` into `dst_dir`, seeking over holes and runs of
    /// zeros, counting data against the byte cap as it is read.
    fn file(&mut self, src_dir: &OwnedFd, name: &OsStr, dst_dir: &OwnedFd, rel: &Rel) -> Result<()> {
        let from = match open_beneath(src_dir, name, libc::O_NONBLOCK | libc::O_NOCTTY) {
            Ok(fd) => File::from(fd),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                self.skip(rel, "symbolic link");
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, e)),
        };
        let meta = from.metadata().map_err(|e| self.io(rel, e))?;
        if !meta.is_file() {
            self.skip(rel, "not a regular file or directory");
            return Ok(());
        }
        let mode = (meta.mode() & 0o777) | 0o600;
        let size = meta.len();
        // What the data takes on disk: holes are kept, so a sparse file needs only its blocks.
        let needed = meta.blocks().saturating_mul(512).min(size);
        if needed >= FREE_CHECK_FROM {
            crate::fsutil::ensure_free(&self.stage, needed).map_err(|e| self.io(rel, e))?;
        }
        let to = create_beneath(dst_dir, name, mode).map_err(|e| self.io(rel, e))?;
        let mut at = 0;
        while at < size {
            let Some((start, end)) = data_segment(&from, at, size) else { break };
            let mut pos = start;
            while pos < end {
                let want = CHUNK.min((end - pos) as usize);
                let n = from.read_at(&mut self.buf[..want], pos).map_err(|e| self.io(rel, e))?;
                if n == 0 {
                    break;
                }
                self.copied.bytes += n as u64;
                if self.copied.bytes > self.limits.bytes {
                    return Err(self.limit(Cap::Bytes, self.limits.bytes, rel));
                }
                let chunk = &self.buf[..n];
                if chunk.iter().any(|b| *b != 0) {
                    to.write_all_at(chunk, pos).map_err(|e| self.io(rel, e))?;
                }
                pos += n as u64;
            }
            at = end.max(start + 1);
        }
        to.set_len(size).map_err(|e| self.io(rel, e))?;
        self.copied.files += 1;
        Ok(())
    }
}

/// The next stretch of data at or after `at` in `f` (`SEEK_DATA`/`SEEK_HOLE`), or all of the
/// rest where the filesystem cannot tell.
fn data_segment(f: &File, at: u64, size: u64) -> Option<(u64, u64)> {
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a valid descriptor.
    let start = unsafe { libc::lseek(fd, at as libc::off_t, libc::SEEK_DATA) };
    if start < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => None,
            _ => Some((at, size)),
        };
    }
    // SAFETY: as above.
    let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
    let end = if end < 0 { size } else { (end as u64).min(size) };
    Some((start as u64, end))
}

fn cstr(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).unwrap_or_default()
}

/// `name` opened under `dir` without following a link at it (`ELOOP` when it is one).
fn open_beneath(dir: &OwnedFd, name: &OsStr, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let name = cstr(name);
    // SAFETY: valid descriptor and NUL-terminated name; the result is checked before wrapping.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new file `name` under `dir`, never an existing name or a link.
fn create_beneath(dir: &OwnedFd, name: &OsStr, mode: u32) -> std::io::Result<File> {
    let name = cstr(name);
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as in open_beneath.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The file type bits of `name` under `dir`, not following a link.
fn stat_beneath(dir: &OwnedFd, name: &OsStr) -> std::io::Result<u32> {
    let name = cstr(name);
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, name and out-parameter.
    if unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

fn fstat_mode(fd: &OwnedFd) -> std::io::Result<u32> {
    // SAFETY: zeroed stat is a valid out-parameter of fstat on a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_mode)
}

fn open_dir_path(path: &Path) -> std::io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(path)?;
    Ok(OwnedFd::from(f))
}

/// `/proc/self/fd/N`, to list a directory held open without resolving its path again.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Rename `from` to `to`, refusing to replace anything at `to`.
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    let (f, t) = (cstr(from.as_os_str()), cstr(to.as_os_str()));
    // SAFETY: NUL-terminated paths relative to the working directory.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.kind() {
            ErrorKind::AlreadyExists => CopyError::Exists { path: to.to_path_buf() },
            _ => CopyError::Io { path: to.to_path_buf(), source: e },
        });
    }
    Ok(())
}

/// A directory's descriptor is held while its children wait, so a deep tree needs many: raise
/// the soft limit on open files to the hard one.
fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit with a valid out-parameter.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A volume root with `out/` in it, and an empty directory to copy into.
    fn volume() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (vol, dest) = (dir.path().join("vol"), dir.path().join("dest"));
        std::fs::create_dir_all(vol.join("out/sub")).unwrap();
        (dir, vol, dest)
    }

    fn copy_out(vol: &Path, rel: &str, dest: &Path, limits: Limits) -> Result<Copied> {
        let rel = Path::new(rel);
        copy(vol, rel, rel.file_name().unwrap(), "agent:x", dest, limits)
    }

    /// A 4 MiB tmpfs mounted at `dir` until dropped; `None` (a skip) when this process may not
    /// mount, unless `GALLEY_TEST_REQUIRE_RUNTIME` makes that a failure.
    struct SmallDisk(PathBuf);

    impl SmallDisk {
        fn mount(dir: &Path) -> Option<SmallDisk> {
            let c = |s: &str| CString::new(s).unwrap();
            let target = cstr(dir.as_os_str());
            // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
            let rc = unsafe { libc::mount(c("tmpfs").as_ptr(), target.as_ptr(), c("tmpfs").as_ptr(), 0, c("size=4m").as_ptr().cast()) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                assert!(std::env::var_os(crate::env_vars::GALLEY_TEST_REQUIRE_RUNTIME).is_none(), "cannot mount a tmpfs: {e}");
                eprintln!("skipped: cannot mount a tmpfs: {e}");
                return None;
            }
            Some(SmallDisk(dir.to_path_buf()))
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let target = cstr(self.0.as_os_str());
            // SAFETY: umount2(2) of the tmpfs this value mounted.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }

    #[test]
    fn a_copy_onto_a_nearly_full_disk_is_refused_before_the_file_is_written_naming_the_figures() {
        let (_dir, vol, dest) = volume();
        std::fs::create_dir_all(&dest).unwrap();
        let Some(_disk) = SmallDisk::mount(&dest) else { return };
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
        std::fs::write(vol.join("out/big"), &data).unwrap();
        let before = crate::fsutil::available_bytes(&dest).unwrap();
        let err = copy_out(&vol, "out", &dest, Limits::default()).unwrap_err().to_string();
        assert!(err.contains("out/big") && err.contains("not enough free space in") && err.contains(&format!("{} bytes needed", data.len())), "{err}");
        assert!(err.contains(&dest.display().to_string()), "the destination is named: {err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "nothing is left, not even the staging directory");
        assert_eq!(crate::fsutil::available_bytes(&dest).unwrap(), before, "nothing was written before the refusal");
    }

    /// Guards links, fifos and hard links in the sandbox's tree: links and fifos are skipped and
    /// reported, a hard link arrives as an independent copy, nothing lands outside `dest`.
    #[test]
    fn links_and_special_files_in_the_tree_are_skipped_and_reported() {
        let (dir, vol, dest) = volume();
        std::fs::write(vol.join("out/sub/file"), "good").unwrap();
        std::fs::hard_link(vol.join("out/sub/file"), vol.join("out/hard")).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("out/etc")).unwrap();
        std::os::unix::fs::symlink("../../..", vol.join("out/sub/up")).unwrap();
        let fifo = cstr(vol.join("out/fifo").as_os_str());
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let copied = copy_out(&vol, "out", &dest, Limits::default()).unwrap();
        let skipped: Vec<String> = copied.skipped.iter().map(|s| format!("{}: {}", s.path, s.reason)).collect();
        assert_eq!(skipped, ["out/etc: symbolic link", "out/fifo: fifo", "out/sub/up: symbolic link"]);
        assert_eq!(copied.files, 2);
        assert_eq!(std::fs::read_to_string(dest.join("out/hard")).unwrap(), "good");
        assert_eq!(std::fs::metadata(dest.join("out/hard")).unwrap().nlink(), 1);
        let mut top: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        top.sort();
        assert_eq!(top, ["dest", "vol"]);
    }

    /// Guards a link planted at the requested path, or on the way to it.
    #[test]
    fn a_link_at_or_above_the_source_is_refused_and_nothing_is_written() {
        let (dir, vol, dest) = volume();
        std::os::unix::fs::symlink("/etc/passwd", vol.join("key")).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("out/sub/etc")).unwrap();
        for (rel, link) in [("key", "key"), ("out/sub/etc/passwd", "out/sub/etc")] {
            let e = copy_out(&vol, rel, &dest, Limits::default()).unwrap_err();
            assert!(e.to_string().contains(&format!("`{link}` is a symbolic link")), "{e}");
        }
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Guards a bomb in depth and name length: the caps stop the copy and the staging goes.
    #[test]
    fn depth_and_path_caps_stop_the_copy_and_leave_nothing() {
        let (dir, vol, dest) = volume();
        std::fs::create_dir_all(vol.join("out/sub/a/b/c")).unwrap();
        let depth = Limits { depth: 3, ..Limits::default() };
        let e = copy_out(&vol, "out", &dest, depth).unwrap_err();
        assert!(e.to_string().contains("more than 3 levels of directories (the cap GALLEY_CP_MAX_DEPTH)"), "{e}");
        let path = Limits { path_bytes: 8, ..Limits::default() };
        let e = copy_out(&vol, "out", &dest, path).unwrap_err();
        assert!(e.to_string().starts_with("copy stopped at out/sub/a: "), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::create_dir(&dest).unwrap();
        copy_out(&vol, "out", &dest, Limits::default()).unwrap();
        let again = copy_out(&vol, "out", &dest, Limits::default()).unwrap_err();
        assert!(matches!(again, CopyError::Exists { .. }), "{again}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    /// Guards holes written out in full: a sparse file and a run of zeros stay holes.
    #[test]
    fn holes_and_runs_of_zeros_are_not_written() {
        let (_dir, vol, dest) = volume();
        let f = File::create(vol.join("out/sparse")).unwrap();
        f.write_all_at(b"x", 1 << 30).unwrap();
        std::fs::write(vol.join("out/zeros"), vec![0u8; 4 << 20]).unwrap();
        let copied = copy_out(&vol, "out", &dest, Limits::default()).unwrap();
        assert!(copied.bytes < (4 << 20) + (1 << 20), "{} bytes read", copied.bytes);
        for (name, len) in [("sparse", (1 << 30) + 1), ("zeros", 4 << 20)] {
            let m = std::fs::metadata(dest.join("out").join(name)).unwrap();
            assert_eq!(m.len(), len);
            assert!(m.blocks() * 512 <= 64 << 10, "{name}: {} blocks", m.blocks());
        }
    }

    #[test]
    fn caps_are_read_from_their_settings() {
        let env = |k: &str| (k == env_vars::GALLEY_CP_MAX_ENTRIES).then(|| "12".to_owned());
        assert_eq!(Limits::from_env(env).unwrap(), Limits { entries: 12, ..Limits::default() });
        let bad = Limits::from_env(|k: &str| (k == env_vars::GALLEY_CP_MAX_DEPTH).then(|| "0".to_owned())).unwrap_err();
        assert_eq!(bad.to_string(), "GALLEY_CP_MAX_DEPTH is \"0\", not a positive whole number");
    }
}

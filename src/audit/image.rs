//! The static part of the audit: a root filesystem scanned for setuid/setgid files, sudo and
//! doas, and runtime sockets, either a live container's (through /proc/PID/root) or an image's
//! (mounted by podman, never run).
//!
//! The walk opens each directory relative to its parent's descriptor with `O_NOFOLLOW`, so a
//! symlink planted in the root (even one swapped in during the walk) never leads out of it. It
//! stays on the root's filesystem and is bounded in depth and entries.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::*;

/// Bounds of a walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_entries: 500_000, max_depth: 64 }
    }
}

/// What a walk found, as paths inside the root.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub setuid: Vec<(String, u32)>,
    pub privilege_tools: Vec<String>,
    pub sockets: Vec<String>,
    /// The walk stopped at a bound.
    pub truncated: bool,
}

const TOOLS: &[&str] = &["sudo", "doas", "su-exec", "gosu"];

/// Walk the tree under `root` without following symlinks or leaving its filesystem.
pub fn scan_root(root: &Path, limits: Limits) -> std::io::Result<Found> {
    let c = CString::new(root.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid C string; the result is checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dev = fstat(fd)?.st_dev;
    let mut found = Found::default();
    let mut seen = 0usize;
    walk(fd, "", dev, 0, limits, &mut seen, &mut found);
    Ok(found)
}

fn fstat(fd: i32) -> std::io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to be overwritten by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out pointer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// Walk the directory open at `fd` (taking ownership of it); `prefix` is its path in the root.
fn walk(fd: i32, prefix: &str, dev: u64, depth: usize, limits: Limits, seen: &mut usize, found: &mut Found) {
    // SAFETY: `fd` is an open directory descriptor; fdopendir takes ownership of it.
    let dir = unsafe { libc::fdopendir(fd) };
    if dir.is_null() {
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return;
    }
    let mut subdirs = Vec::new();
    loop {
        // SAFETY: `dir` is a valid DIR stream until closedir below.
        let entry = unsafe { libc::readdir(dir) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        *seen += 1;
        if *seen > limits.max_entries {
            found.truncated = true;
            break;
        }
        // SAFETY: an all-zero stat is valid; `dir`'s fd and `name` are valid; no symlink is followed.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatat(libc::dirfd(dir), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
            continue;
        }
        let shown = format!("{prefix}/{}", OsStr::from_bytes(name.as_bytes()).to_string_lossy());
        let kind = st.st_mode & libc::S_IFMT;
        let base = shown.rsplit('/').next().unwrap_or_default();
        if kind == libc::S_IFREG && st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            found.setuid.push((shown.clone(), st.st_mode & 0o7777));
        }
        if (kind == libc::S_IFREG || kind == libc::S_IFLNK) && TOOLS.contains(&base) {
            found.privilege_tools.push(shown.clone());
        }
        if kind == libc::S_IFSOCK && checks::is_runtime_socket(&shown) {
            found.sockets.push(shown.clone());
        }
        if kind == libc::S_IFDIR && st.st_dev == dev {
            subdirs.push((name, shown));
        }
    }
    for (name, shown) in subdirs {
        if depth + 1 > limits.max_depth {
            found.truncated = true;
            continue;
        }
        // SAFETY: `dir` is valid; `name` is one path component; O_NOFOLLOW refuses a symlink
        // swapped in since the fstatat.
        let child = unsafe {
            libc::openat(
                libc::dirfd(dir),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if child >= 0 {
            if fstat(child).ok().map(|s| s.st_dev) != Some(dev) {
                // SAFETY: `child` is open and ours.
                unsafe { libc::close(child) };
                continue;
            }
            walk(child, &shown, dev, depth + 1, limits, seen, found);
        }
    }
    // SAFETY: `dir` came from fdopendir and is closed once.
    unsafe { libc::closedir(dir) };
}

/// Turn what a walk found into findings.
pub fn report(found: &Found, sink: &mut Sink<'_>) {
    sink.ran(SETUID);
    sink.ran(RUNTIME_SOCKET);
    for (path, mode) in &found.setuid {
        sink.fail(SETUID, format!("{path} is setuid/setgid"), "no setuid or setgid files", format!("mode {mode:04o}"));
    }
    for path in &found.privilege_tools {
        sink.fail(SETUID, format!("{path} is a privilege tool"), "no sudo, doas, su-exec or gosu", path.clone());
    }
    for path in &found.sockets {
        sink.fail(RUNTIME_SOCKET, format!("a runtime socket lies at {path}"), "no runtime socket", path.clone());
    }
    if found.truncated {
        sink.warn(SETUID, "the root filesystem scan stopped at its bound", "a complete scan", "truncated");
    }
}

/// `galley verify --image REF`: mount the image (never run it), scan it, check its user.
pub fn scan_image(runner: &dyn Runner, reference: &str) -> Result<SandboxReport, AuditError> {
    let err = |message: String| AuditError::Image { image: reference.into(), message };
    let inspect = runner.check(&podman().args(["image", "inspect", reference]))?;
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).map_err(|e| err(e.to_string()))?;
    let user = info.pointer("/0/Config/User").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let mount = runner.check(&podman().args(["image", "mount", reference]))?;
    let path = mount.stdout_str().trim().to_owned();
    let scanned = scan_root(Path::new(&path), Limits::default());
    let unmount = runner.check(&podman().args(["image", "unmount", reference]));
    let found = scanned.map_err(|e| err(format!("cannot walk {path}: {e}")))?;
    unmount?;
    let mut sink = Sink::new("", reference);
    sink.ran(USER);
    let uid = user.split(':').next().unwrap_or_default();
    if uid.is_empty() || uid == "0" || uid == "root" {
        let shown = if user.is_empty() { "unset (root)".to_owned() } else { user };
        sink.fail(USER, "the image runs as root by default", "a non-root user", shown);
    }
    report(&found, &mut sink);
    Ok(SandboxReport::from_sink(sink))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_walk_finds_setuid_files_and_never_follows_symlinks_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"x").unwrap();
        std::fs::set_permissions(root.join("usr/bin/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::write(root.join("usr/bin/doas"), b"x").unwrap();
        std::os::unix::fs::symlink("/", root.join("host")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("usr/hostbin")).unwrap();
        let found = scan_root(root, Limits::default()).unwrap();
        assert_eq!(found.setuid, vec![("/usr/bin/tool".to_owned(), 0o4755)]);
        assert_eq!(found.privilege_tools, vec!["/usr/bin/doas".to_owned()]);
        assert!(!found.truncated);
    }

    #[test]
    fn the_walk_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = dir.path().to_path_buf();
        for i in 0..5 {
            p = p.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&p).unwrap();
        let found = scan_root(dir.path(), Limits { max_entries: 100, max_depth: 2 }).unwrap();
        assert!(found.truncated);
        let found = scan_root(dir.path(), Limits { max_entries: 3, max_depth: 64 }).unwrap();
        assert!(found.truncated);
    }
}

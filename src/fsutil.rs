//! File-system helpers: atomic writes, so a crash never leaves a half-written file; free-space
//! checks; and reads of a project's files that never leave the project through a link, wait on
//! a FIFO or take more than a cap.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` through a temporary file in the same directory, fsync it, rename it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, None)
}

/// As [`write_atomic`], creating the file with permission bits `mode` (e.g. 0o600) from the start.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    staged(path, bytes, mode)?.persist(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// As [`write_atomic`], but never replacing a file already at `path` (the rename is refused when
/// one appeared since the caller looked: `AlreadyExists`).
pub fn write_atomic_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    staged(path, bytes, None)?.persist_noclobber(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// `bytes` in a synced temporary file beside `path`, ready to be renamed onto it.
fn staged(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".galley-tmp-");
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| with_path(e, dir))?;
    tmp.write_all(bytes).map_err(|e| with_path(e, path))?;
    tmp.as_file().sync_all().map_err(|e| with_path(e, path))?;
    Ok(tmp)
}

/// `e` with `path` named in its message.
pub fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Bytes a process without special rights may still write on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}: a NUL in the path", dir.display())))?;
    // SAFETY: statvfs(3) writes into the zeroed struct it is given; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(with_path(std::io::Error::last_os_error(), dir));
    }
    Ok(unprivileged_free(&st))
}

fn unprivileged_free(st: &libc::statvfs) -> u64 {
    (st.f_bavail as u64).saturating_mul(st.f_frsize as u64)
}

/// Refuse, before a large write of `needed` bytes under `dir`, when its file system has less
/// free: the error names the path and both figures, instead of a write failing half way.
pub fn ensure_free(dir: &Path, needed: u64) -> std::io::Result<()> {
    enough(&dir.display(), needed, available_bytes(dir)?)
}

/// [`ensure_free`] for the file system holding the open file `file` (an unnamed temporary file
/// of the store).
pub fn ensure_free_for(file: &std::fs::File, needed: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatvfs(3) writes into the zeroed struct it is given; the descriptor is open.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    enough(&"the store", needed, unprivileged_free(&st))
}

fn enough(place: &dyn std::fmt::Display, needed: u64, available: u64) -> std::io::Result<()> {
    if needed > available {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("not enough free space in {place}: {needed} bytes needed, {available} available"),
        ));
    }
    Ok(())
}

/// Why a file of a project could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("leads out of the project through a symbolic link (to {})", .0.display())]
    Escapes(std::path::PathBuf),
    #[error("is a symbolic link")]
    Link,
    #[error("is not a regular file")]
    NotFile,
    #[error("is {size} bytes, over galley's limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
}

/// `rel` (relative, without `..`; or an absolute path) under `root` with every link on the way
/// resolved: its real path, which is inside `root`'s; [`ReadError::Escapes`] when it is not.
pub fn beneath(root: &Path, rel: &Path) -> Result<std::path::PathBuf, ReadError> {
    let root = std::fs::canonicalize(root)?;
    let real = std::fs::canonicalize(root.join(rel))?;
    if real.starts_with(&root) { Ok(real) } else { Err(ReadError::Escapes(real)) }
}

/// The bytes of the regular file at `path`, at most `max`: opened without following a link at
/// its last component ([`ReadError::Link`]) or waiting for a FIFO's writer.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ReadError::Link),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotFile);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { size: meta.len(), max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { size: bytes.len() as u64, max });
    }
    Ok(bytes)
}

/// [`read_regular`] of `rel` under `root`, after [`beneath`].
pub fn read_beneath(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_regular(&beneath(root, rel)?, max)
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_is_checked_against_the_file_system_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let free = super::available_bytes(dir.path()).unwrap();
        assert!(free > 0);
        super::ensure_free(dir.path(), 1).unwrap();
        let err = super::ensure_free(dir.path(), u64::MAX).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()) && err.contains(&format!("{} bytes needed", u64::MAX)), "{err}");
    }

    #[test]
    fn a_new_file_never_replaces_one_that_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("galley.ncl");
        super::write_atomic_new(&path, b"first").unwrap();
        let err = super::write_atomic_new(&path, b"second").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
    /// The attack: a pull request's file that is a link to a host file (`/etc/shadow`), a link
    /// that leaves the project, a FIFO that hangs a reader, or one larger than the cap.
    #[test]
    fn a_project_file_is_read_only_beneath_the_project_as_a_regular_file_within_its_cap() {
        use super::*;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("project");
        std::fs::create_dir_all(root.join("docker")).unwrap();
        std::fs::write(root.join("docker/Containerfile"), "FROM x\n").unwrap();
        std::fs::write(d.path().join("outside"), "host secret\n").unwrap();
        std::os::unix::fs::symlink("docker/Containerfile", root.join("Containerfile")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
        std::os::unix::fs::symlink("..", root.join("docker/parent")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let read = |rel: &str| read_beneath(&root, Path::new(rel), 64);
        assert_eq!(read("Containerfile").unwrap(), b"FROM x\n", "a link inside the project is followed");
        assert_eq!(read("docker/parent/docker/Containerfile").unwrap(), b"FROM x\n");
        for escaping in ["up", "passwd", "docker/parent/up"] {
            assert!(matches!(read(escaping), Err(ReadError::Escapes(_))), "{escaping}: {:?}", read(escaping));
        }
        assert!(matches!(read("fifo"), Err(ReadError::NotFile)), "a FIFO is refused without waiting");
        assert!(matches!(read("docker"), Err(ReadError::NotFile)));
        assert!(matches!(read("missing"), Err(ReadError::Io(_))));
        std::fs::write(root.join("big"), vec![b'x'; 65]).unwrap();
        assert!(matches!(read("big"), Err(ReadError::TooLarge { size: 65, max: 64 })));
        assert!(matches!(read_regular(&root.join("Containerfile"), 64), Err(ReadError::Link)), "read_regular itself follows no link");
    }
}

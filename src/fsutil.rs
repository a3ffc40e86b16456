//! File-system helpers: atomic writes, so a crash never leaves a half-written file.

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
}

//! Secret files on the host: `GALLEY_HOME/run/<project>/<instance>/<sandbox>/<NAME>`, on a tmpfs
//! (galley mounts a small one there when the directory is not already on one), mode 0400 and
//! owned by the host uid the sandbox's user namespace maps its user to (so no host account but
//! root can read it), bind-mounted read-only at `/run/secrets/NAME`. Never on disk.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, RuntimeError};
use crate::secrets::SecretValue;

const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The file beside a sandbox's secrets naming the container they belong to.
const OWNER_FILE: &str = ".container";

/// The per-instance secrets directory.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    pub root: PathBuf,
}

impl SecretsDir {
    pub fn new(root: PathBuf) -> SecretsDir {
        SecretsDir { root }
    }

    /// Make sure the directory exists and is on a tmpfs, mounting one when possible.
    pub fn ensure_tmpfs(&self) -> Result<()> {
        fs_err::create_dir_all(&self.root).map_err(RuntimeError::io(&self.root))?;
        let _ = std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700));
        if super::host::statfs_type(&self.root) == Some(TMPFS_MAGIC) {
            return Ok(());
        }
        mount_tmpfs(&self.root);
        if super::host::statfs_type(&self.root) == Some(TMPFS_MAGIC) {
            return Ok(());
        }
        Err(RuntimeError::Host {
            sandbox: "*".into(),
            message: format!("{} is not on a tmpfs and galley cannot mount one there", self.root.display()),
            help: format!(
                "run galley as root, or mount a tmpfs yourself: mount -t tmpfs -o size=4m,mode=0700 tmpfs {}",
                self.root.display()
            ),
        })
    }

    /// The directory of `sandbox`'s secret files, one per secret name.
    pub fn sandbox_dir(&self, sandbox: &str) -> PathBuf {
        self.root.join(sandbox)
    }

    /// Write one secret file (mode 0400, owned by galley until [`SecretsDir::chown`] hands it to
    /// the sandbox); returns its host path.
    pub fn write(&self, sandbox: &str, name: &str, value: &SecretValue) -> Result<PathBuf> {
        let dir = self.sandbox_dir(sandbox);
        fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(RuntimeError::io(&path))?;
        f.write_all(value.expose_secret()).map_err(RuntimeError::io(&path))?;
        Ok(path)
    }

    /// Give a secret file written by [`SecretsDir::write`] to host ids `uid:gid`, never through a
    /// symlink.
    pub fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(RuntimeError::io(path))?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(RuntimeError::io(path))
    }

    /// Record that container `id` owns the sandbox's secret files, so the stop hook of a
    /// container it replaced leaves them alone.
    pub fn claim(&self, sandbox: &str, id: &str) -> Result<()> {
        let path = self.sandbox_dir(sandbox).join(OWNER_FILE);
        crate::fsutil::write_atomic(&path, id.as_bytes()).map_err(RuntimeError::io(&path))
    }

    /// Whether a container other than `id` has claimed the sandbox's secret files.
    pub fn claimed_by_another(&self, sandbox: &str, id: &str) -> bool {
        std::fs::read_to_string(self.sandbox_dir(sandbox).join(OWNER_FILE)).is_ok_and(|owner| owner.trim() != id)
    }

    /// Remove a sandbox's secret files, overwriting them first.
    pub fn remove_sandbox(&self, sandbox: &str) {
        let dir = self.sandbox_dir(sandbox);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                scrub(&e.path());
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Remove every secret of the instance and unmount its tmpfs.
    pub fn remove_all(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    self.remove_sandbox(name);
                }
            }
        }
        unmount(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// Whether any secret file of the instance is left.
    pub fn is_empty(&self) -> bool {
        std::fs::read_dir(&self.root).map_or(true, |mut d| d.next().is_none())
    }
}

fn scrub(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_file()
        && let Ok(mut f) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path)
    {
        let _ = f.write_all(&vec![0u8; meta.len() as usize]);
    }
    let _ = std::fs::remove_file(path);
}

fn c_path(path: &Path) -> Option<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
}

fn mount_tmpfs(path: &Path) {
    let (Some(target), Ok(fstype), Ok(opts)) =
        (c_path(path), std::ffi::CString::new("tmpfs"), std::ffi::CString::new("size=4m,mode=0700"))
    else {
        return;
    };
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: every pointer is a valid C string that outlives the call.
    unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, opts.as_ptr().cast()) };
}

/// Unmount `path` when it is a mount point of its own.
fn unmount(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(parent)) = (std::fs::metadata(path), path.parent()) else { return };
    let Ok(up) = std::fs::metadata(parent) else { return };
    if me.dev() != up.dev()
        && let Some(target) = c_path(path)
    {
        // SAFETY: target is a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

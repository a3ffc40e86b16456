//! The image store: an OCI image layout under `$GALLEY_HOME/store` (`oci-layout`, `index.json`,
//! `blobs/sha256/...`). Blobs enter only through a temporary file in `$GALLEY_HOME/tmp` that is
//! verified against its digest (and size, when known) and then renamed into place, so the store
//! never holds a partial or unverified blob.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::config::{self, Descriptor, Index, Manifest, REF_NAME};
use crate::domain::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {digest} is not in the store")]
    Missing { digest: Digest },
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    Size { digest: Digest, expected: u64, actual: u64 },
    #[error("{what} {digest}: {message}")]
    Parse { what: &'static str, digest: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store of galley home `home`.
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        Store::open_at(&home.join("store"), &home.join("tmp"))
    }

    /// Open (creating if needed) an OCI layout at `root`, with temporary files in `tmp` (which
    /// must be on the same file system).
    pub fn open_at(root: &Path, tmp: &Path) -> Result<Store, StoreError> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        fs::create_dir_all(tmp).map_err(io_err(tmp))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            crate::fsutil::write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err(&layout))?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            crate::fsutil::write_atomic(&index, &crate::canonical::to_vec(&Index::empty())).map_err(io_err(&index))?;
        }
        Ok(Store { root: root.to_owned(), tmp: tmp.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A temporary file in the store's temp directory (deleted on drop unless committed).
    pub fn temp(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new().prefix("blob-").tempfile_in(&self.tmp).map_err(io_err(&self.tmp))
    }

    /// Move a temporary file whose content is already known to hash to `digest` into place.
    pub fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dst = self.blob_path(digest);
        if dst.is_file() {
            return Ok(dst);
        }
        {
            use std::os::unix::fs::PermissionsExt;
            // Blobs are content, readable by the runtimes that load them.
            let _ = tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644));
        }
        tmp.persist(&dst).map_err(|e| StoreError::Io { path: dst.clone(), source: e.error })?;
        Ok(dst)
    }

    /// Hash a temporary file, check it against `digest` (and `size`), and move it into place.
    /// On mismatch the file is deleted and nothing enters the store.
    pub fn commit_verified(&self, tmp: tempfile::NamedTempFile, digest: &Digest, size: Option<u64>) -> Result<PathBuf, StoreError> {
        let (actual, len) = hash_file(tmp.path())?;
        if let Some(expected) = size
            && expected != len {
                return Err(StoreError::Size { digest: *digest, expected, actual: len });
            }
        if actual != *digest {
            return Err(StoreError::Corrupt { digest: *digest, actual });
        }
        self.commit(tmp, digest)
    }

    /// Store `bytes`, returning their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut tmp = self.temp()?;
        tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        self.commit(tmp, &digest)?;
        Ok(digest)
    }

    /// Read a blob, checking that it still hashes to its name.
    pub fn read_verified(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::Missing { digest: *digest }),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::Corrupt { digest: *digest, actual });
        }
        Ok(bytes)
    }

    /// Check a (possibly large) blob on disk against its digest without loading it.
    pub fn verify(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(StoreError::Missing { digest: *digest });
        }
        let (actual, len) = hash_file(&path)?;
        if actual != *digest {
            return Err(StoreError::Corrupt { digest: *digest, actual });
        }
        Ok(len)
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File, StoreError> {
        let path = self.blob_path(digest);
        fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Missing { digest: *digest },
            _ => StoreError::Io { path, source: e },
        })
    }

    /// An image manifest by digest.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest, StoreError> {
        let bytes = self.read_verified(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Parse { what: "manifest", digest: digest.to_string(), message: e.to_string() })
    }

    /// A JSON blob (config) by digest.
    pub fn json(&self, digest: &Digest) -> Result<serde_json::Value, StoreError> {
        let bytes = self.read_verified(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Parse { what: "config", digest: digest.to_string(), message: e.to_string() })
    }

    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Parse { what: "index", digest: path.display().to_string(), message: e.to_string() })
    }

    /// Point the ref name `name` at `manifest` (replacing what it named before).
    pub fn set_ref(&self, name: &str, mut manifest: Descriptor) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        index.manifests.retain(|d| d.ref_name() != Some(name));
        manifest.annotations.get_or_insert_with(Default::default).insert(REF_NAME.into(), name.into());
        index.manifests.push(manifest);
        index.manifests.sort_by(|a, b| a.ref_name().cmp(&b.ref_name()).then(a.digest.cmp(&b.digest)));
        let path = self.root.join("index.json");
        crate::fsutil::write_atomic(&path, &crate::canonical::to_vec(&index)).map_err(io_err(&path))
    }

    /// The manifest descriptor a ref name points at.
    pub fn get_ref(&self, name: &str) -> Result<Option<Descriptor>, StoreError> {
        Ok(self.index()?.manifests.into_iter().find(|d| d.ref_name() == Some(name)))
    }

    /// Drop every ref whose descriptor `keep` refuses; returns the dropped ref names.
    pub fn drop_refs(&self, keep: impl Fn(&Descriptor) -> bool) -> Result<Vec<String>, StoreError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let (kept, dropped): (Vec<_>, Vec<_>) = index.manifests.into_iter().partition(|d| keep(d));
        if dropped.is_empty() {
            return Ok(Vec::new());
        }
        index.manifests = kept;
        let path = self.root.join("index.json");
        crate::fsutil::write_atomic(&path, &crate::canonical::to_vec(&index)).map_err(io_err(&path))?;
        Ok(dropped.iter().map(|d| d.ref_name().map_or_else(|| d.digest.to_string(), str::to_owned)).collect())
    }

    /// Every complete blob in the store with its size, by digest (temporary files never are here).
    pub fn blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            // A file not named by a digest is not a blob.
            let Ok(digest) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) else {
                continue;
            };
            let meta = e.metadata().map_err(io_err(&e.path()))?;
            if meta.is_file() {
                out.push((digest, meta.len()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Delete blob `digest` (a refused pull's).
    pub fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        fs::remove_file(&path).map_err(io_err(&path))
    }

    /// Take blob `digest` out of the store in one step: rename it into `trash` (a directory on
    /// the same file system), where the caller deletes it.
    pub fn move_blob(&self, digest: &Digest, trash: &Path) -> Result<(), StoreError> {
        let from = self.blob_path(digest);
        let to = trash.join(digest.hex());
        fs::rename(&from, &to).map_err(io_err(&from))
    }

    /// An exclusive lock on the index (flock on `$root/.lock`), released on drop.
    fn lock(&self) -> Result<fs::File, StoreError> {
        use std::os::fd::AsRawFd;
        let path = self.tmp.join("index.lock");
        let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        // SAFETY: flock on a valid open descriptor.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(StoreError::Io { path, source: io::Error::last_os_error() });
        }
        Ok(f)
    }

    /// Store a manifest document and return its descriptor.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<Descriptor, StoreError> {
        let bytes = crate::canonical::to_vec(manifest);
        let digest = self.put(&bytes)?;
        Ok(Descriptor::new(config::MEDIA_MANIFEST, digest, bytes.len() as u64))
    }
}

/// sha256 digest and length of a file.
pub fn hash_file(path: &Path) -> Result<(Digest, u64), StoreError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    sha256_read(&mut f).map_err(io_err(path))
}

/// sha256 and length of everything left in `f`.
pub fn sha256_read(f: &mut fs::File) -> io::Result<(Digest, u64)> {
    let mut sha = Sha256::new();
    // Sized to the file (small files are the common case: zeroing a large buffer per file
    // would cost more than hashing it).
    let hint = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut buf = vec![0u8; (hint + 1).clamp(8 << 10, 1 << 20)];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Digest::from_sha256(sha.finalize().into()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_on_the_way_in_and_out() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(store.read_verified(&d).unwrap(), b"hello");
        // A temp file that does not match its claimed digest never enters the store.
        let mut tmp = store.temp().unwrap();
        tmp.write_all(b"evil").unwrap();
        let claimed = Digest::of(b"good");
        let err = store.commit_verified(tmp, &claimed, None).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(!store.has_blob(&claimed));
        assert_eq!(fs::read_dir(home.path().join("tmp")).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "index.lock").count(), 0);
        // Tampering on disk is noticed on read.
        fs::write(store.blob_path(&d), b"HELLO").unwrap();
        assert!(matches!(store.read_verified(&d), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn refs_replace_and_sort() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        store.set_ref("p/b", Descriptor::new(config::MEDIA_MANIFEST, Digest::of(b"1"), 1)).unwrap();
        store.set_ref("p/a", Descriptor::new(config::MEDIA_MANIFEST, Digest::of(b"2"), 1)).unwrap();
        store.set_ref("p/b", Descriptor::new(config::MEDIA_MANIFEST, Digest::of(b"3"), 1)).unwrap();
        let names: Vec<_> = store.index().unwrap().manifests.iter().map(|d| d.ref_name().unwrap().to_owned()).collect();
        assert_eq!(names, vec!["p/a", "p/b"]);
        assert_eq!(store.get_ref("p/b").unwrap().unwrap().digest, Digest::of(b"3"));
    }
}

//! The input-addressed layer cache (Nix-style) and the file-hash cache.
//!
//! Every layer has an *input key*: the sha256 of the canonical JSON of everything its bytes
//! depend on (the step, the declared owners and modes, each input file's content hash, the parent
//! chain for steps that see it, the compression and the mtime clamp). A layer whose key has a
//! record (`$GALLEY_HOME/cache/layers/<key>.json`) whose blob is still in the store is reused
//! without tarring or compressing anything.
//!
//! File content hashes are remembered by path with the file's (size, mtime, ctime, inode,
//! device), as git's index does, so an unchanged file is not read again. An entry is only
//! recorded when the file's mtime is at least two seconds old, so a file changed within the
//! timestamp granularity of the recorded stat is never mistaken for unchanged.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::store::{StoreError, hash_file};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    sha256: String,
}

impl StatEntry {
    fn matches(&self, m: &fs::Metadata) -> bool {
        self.size == m.len()
            && self.mtime_ns == mtime_ns(m)
            && self.ctime_ns == m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128
            && self.ino == m.ino()
            && self.dev == m.dev()
    }
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

pub struct Cache {
    dir: PathBuf,
    stats: Mutex<BTreeMap<String, StatEntry>>,
    dirty: Mutex<bool>,
    /// Files actually read and hashed (not answered from the stat cache).
    pub hashed: std::sync::atomic::AtomicUsize,
}

impl Cache {
    pub fn open(home: &Path) -> Cache {
        let dir = home.join("cache");
        let stats = fs::read(dir.join("stat.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache { dir, stats: Mutex::new(stats), dirty: Mutex::new(false), hashed: Default::default() }
    }

    /// The content hash of `path` (whose metadata is `meta`), from the stat cache when the file
    /// is unchanged.
    pub fn file_hash(&self, path: &Path, meta: &fs::Metadata) -> Result<String, StoreError> {
        let key = path.to_string_lossy().into_owned();
        if let Some(e) = self.stats.lock().expect("stat cache").get(&key)
            && e.matches(meta) {
                return Ok(e.sha256.clone());
            }
        let (digest, len) = hash_file(path)?;
        self.hashed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if len == meta.len() {
            self.remember(path, meta, &digest);
        }
        Ok(digest)
    }

    /// Record that `path`, with metadata `meta`, hashes to `digest`.
    pub fn remember(&self, path: &Path, meta: &fs::Metadata, digest: &str) {
        let key = path.to_string_lossy().into_owned();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        if mtime_ns(meta) < now_ns - 2_000_000_000 {
            let entry = StatEntry {
                size: meta.len(),
                mtime_ns: mtime_ns(meta),
                ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                ino: meta.ino(),
                dev: meta.dev(),
                sha256: digest.to_owned(),
            };
            self.stats.lock().expect("stat cache").insert(key, entry);
            *self.dirty.lock().expect("stat cache") = true;
        }
    }

    /// Whether any layer was ever recorded.
    pub fn has_layers(&self) -> bool {
        fs::read_dir(self.dir.join("layers")).is_ok_and(|mut d| d.next().is_some())
    }

    /// Write the stat cache back if it changed.
    pub fn save(&self) {
        if !*self.dirty.lock().expect("stat cache") {
            return;
        }
        let _ = fs::create_dir_all(&self.dir);
        let stats = self.stats.lock().expect("stat cache");
        let _ = crate::fsutil::write_atomic(&self.dir.join("stat.json"), &serde_json::to_vec(&*stats).unwrap_or_default());
    }

    fn layer_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{}.json", key.trim_start_matches("sha256:")))
    }

    pub fn layer(&self, key: &str) -> Option<CachedLayer> {
        let bytes = fs::read(self.layer_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put_layer(&self, key: &str, layer: &CachedLayer) {
        let path = self.layer_path(key);
        if let Some(p) = path.parent() {
            let _ = fs::create_dir_all(p);
        }
        let _ = crate::fsutil::write_atomic(&path, &crate::canonical::to_vec(layer));
    }

    /// Small JSON records by name (`bases.json`: base reference -> digest).
    pub fn read_json<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> T {
        fs::read(self.dir.join(name)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) {
        let _ = fs::create_dir_all(&self.dir);
        let _ = crate::fsutil::write_atomic(&self.dir.join(name), &crate::canonical::to_vec(value));
    }
}

/// The input key of a layer: sha256 of the canonical JSON of its inputs.
pub fn input_key(inputs: &serde_json::Value) -> String {
    super::store::digest_of(&crate::canonical::to_vec(inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_read_again() {
        let home = tempfile::tempdir().unwrap();
        let f = home.path().join("f");
        fs::write(&f, b"one").unwrap();
        // Make the file old enough to be recorded.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options().write(true).open(&f).unwrap().set_modified(old).unwrap();
        let cache = Cache::open(home.path());
        let h1 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        let h2 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_eq!(h1, h2);
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 1);
        cache.save();
        let cache = Cache::open(home.path());
        cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 0);
        fs::write(&f, b"two").unwrap();
        let h3 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_ne!(h1, h3);
    }
}

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
//! recorded when the file's mtime and ctime are at least two seconds old, so a file changed
//! within the timestamp granularity of the recorded stat is never mistaken for unchanged.
//!
//! A files layer is also remembered by its *stat fingerprint*: the hash of everything its input
//! key depends on, with each file's content hash replaced by the file's stat tuple
//! (`cache/trees/<fingerprint>` holds the key). A rebuild whose walk gives the same fingerprint
//! takes the key from there without looking up or hashing any file: the same rule as the stat
//! cache, applied to the whole tree at once. A fingerprint is only recorded when every file in
//! it is settled (its mtime and ctime two seconds old or more). The project tree RUN steps see
//! is remembered the same way, fingerprint to tree hash.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::layer::{Entry, Kind};
use super::store::{StoreError, hash_file};
use crate::domain::Digest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: Digest,
    pub diff_id: Digest,
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
    sha256: Digest,
}

impl StatEntry {
    fn matches(&self, m: &fs::Metadata) -> bool {
        self.size == m.len()
            && self.mtime_ns == mtime_ns(m)
            && self.ctime_ns == ctime_ns(m)
            && self.ino == m.ino()
            && self.dev == m.dev()
    }
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

fn ctime_ns(m: &fs::Metadata) -> i128 {
    m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128
}

/// Whether a file's recorded stat can stand for its content: its mtime and ctime are at least
/// two seconds older than `now_ns`, so a later write within the timestamp granularity (even one
/// that puts the mtime back) cannot go unseen.
fn settled(meta: &fs::Metadata, now_ns: i128) -> bool {
    mtime_ns(meta).max(ctime_ns(meta)) < now_ns - 2_000_000_000
}

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

pub struct Cache {
    dir: PathBuf,
    /// Loaded on first use: a rebuild answered by a stat fingerprint never reads it.
    stats: OnceLock<Mutex<BTreeMap<String, StatEntry>>>,
    dirty: Mutex<bool>,
    /// Files actually read and hashed (not answered from the stat cache).
    pub hashed: std::sync::atomic::AtomicUsize,
}

impl Cache {
    pub fn open(home: &Path) -> Cache {
        Cache { dir: home.join("cache"), stats: OnceLock::new(), dirty: Mutex::new(false), hashed: Default::default() }
    }

    fn stats(&self) -> &Mutex<BTreeMap<String, StatEntry>> {
        self.stats.get_or_init(|| {
            let stats = fs::read(self.dir.join("stat.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            Mutex::new(stats)
        })
    }

    /// The content hash of `path` (whose metadata is `meta`), from the stat cache when the file
    /// is unchanged.
    pub fn file_hash(&self, path: &Path, meta: &fs::Metadata) -> Result<Digest, StoreError> {
        let key = path.to_string_lossy().into_owned();
        if let Some(e) = self.stats().lock().expect("stat cache").get(&key)
            && e.matches(meta) {
                return Ok(e.sha256);
            }
        let (digest, len) = hash_file(path)?;
        self.hashed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if len == meta.len() {
            self.remember(path, meta, &digest);
        }
        Ok(digest)
    }

    /// Record that `path`, with metadata `meta`, hashes to `digest`.
    pub fn remember(&self, path: &Path, meta: &fs::Metadata, digest: &Digest) {
        let key = path.to_string_lossy().into_owned();
        if settled(meta, now_ns()) {
            let entry = StatEntry {
                size: meta.len(),
                mtime_ns: mtime_ns(meta),
                ctime_ns: ctime_ns(meta),
                ino: meta.ino(),
                dev: meta.dev(),
                sha256: *digest,
            };
            self.stats().lock().expect("stat cache").insert(key, entry);
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
        let stats = self.stats().lock().expect("stat cache");
        let _ = crate::fsutil::write_atomic(&self.dir.join("stat.json"), &serde_json::to_vec(&*stats).unwrap_or_default());
    }

    /// The cache's directory, `$GALLEY_HOME/cache`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drop the stat cache entries that can no longer answer (the file is gone or its stat
    /// changed). Returns how many went and how many bytes the record shrank by; a `dry_run`
    /// writes nothing.
    pub fn prune_stats(&self, dry_run: bool) -> (usize, u64) {
        let path = self.dir.join("stat.json");
        let before = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut stats = self.stats().lock().expect("stat cache");
        let count = stats.len();
        stats.retain(|p, e| fs::symlink_metadata(p).is_ok_and(|m| e.matches(&m)));
        let dropped = count - stats.len();
        if dropped == 0 {
            return (0, 0);
        }
        let bytes = serde_json::to_vec(&*stats).unwrap_or_default();
        if !dry_run {
            let _ = crate::fsutil::write_atomic(&path, &bytes);
        }
        (dropped, before.saturating_sub(bytes.len() as u64))
    }

    /// The digest (a layer's input key, a tree's hash) recorded for a stat fingerprint.
    pub fn tree_key(&self, fingerprint: &Digest) -> Option<Digest> {
        let text = fs::read_to_string(self.tree_path(fingerprint)).ok()?;
        Digest::parse(text.trim()).ok()
    }

    pub fn put_tree_key(&self, fingerprint: &Digest, key: &Digest) {
        let path = self.tree_path(fingerprint);
        if let Some(p) = path.parent() {
            let _ = fs::create_dir_all(p);
        }
        let _ = crate::fsutil::write_atomic(&path, key.to_string().as_bytes());
    }

    fn tree_path(&self, fingerprint: &Digest) -> PathBuf {
        self.dir.join("trees").join(fingerprint.hex())
    }

    fn layer_path(&self, key: &Digest) -> PathBuf {
        self.dir.join("layers").join(format!("{}.json", key.hex()))
    }

    pub fn layer(&self, key: &Digest) -> Option<CachedLayer> {
        let bytes = fs::read(self.layer_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put_layer(&self, key: &Digest, layer: &CachedLayer) {
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

/// Feed a settled file's stat tuple to `h`; `false` when the file is not settled.
fn hash_stat(h: &mut sha2::Sha256, m: &fs::Metadata, now: i128) -> bool {
    use sha2::Digest as _;
    if !settled(m, now) {
        return false;
    }
    h.update(m.len().to_le_bytes());
    h.update(mtime_ns(m).to_le_bytes());
    h.update(ctime_ns(m).to_le_bytes());
    h.update(m.ino().to_le_bytes());
    h.update(m.dev().to_le_bytes());
    h.update(m.nlink().to_le_bytes());
    true
}

/// The stat fingerprint of `entries` under `salt` (the rest of the layer's inputs), or `None`
/// when a file is not settled or was not stat'ed by the walk.
pub fn stat_fingerprint(entries: &[Entry], salt: &[u8]) -> Option<Digest> {
    use sha2::Digest as _;
    let now = now_ns();
    let mut h = sha2::Sha256::new();
    h.update(b"galley stat fingerprint 1\0");
    h.update(salt);
    for e in entries {
        h.update(b"\0");
        h.update(e.path.as_bytes());
        h.update(b"\0");
        h.update(e.type_name().as_bytes());
        for n in [e.mode, e.uid, e.gid] {
            h.update(n.to_le_bytes());
        }
        h.update(e.mtime.to_le_bytes());
        match &e.kind {
            Kind::File { src, size, stat } => {
                let m = stat.as_deref()?;
                if m.len() != *size {
                    return None;
                }
                h.update(src.as_os_str().as_encoded_bytes());
                h.update(b"\0");
                if !hash_stat(&mut h, m, now) {
                    return None;
                }
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.update(t.as_bytes());
                h.update(b"\0");
            }
            Kind::Dir => {}
            // Bytes made in memory or spilled by a RUN step have no stat to stand for them.
            Kind::Data(_) | Kind::Spilled { .. } => return None,
        }
    }
    Some(Digest::from_sha256(h.finalize().into()))
}

/// The stat fingerprint of a directory tree given as (relative path, metadata) pairs: every
/// path, its mode, and the stat tuple of each file and symlink (a symlink is replaced, never
/// changed in place, so its tuple stands for its target). `None` when one is not settled.
pub fn tree_fingerprint<'a>(items: impl Iterator<Item = (&'a str, &'a fs::Metadata)>) -> Option<Digest> {
    use sha2::Digest as _;
    let now = now_ns();
    let mut h = sha2::Sha256::new();
    h.update(b"galley tree fingerprint 1\0");
    for (rel, m) in items {
        h.update(b"\0");
        h.update(rel.as_bytes());
        h.update(b"\0");
        h.update(m.mode().to_le_bytes());
        if (m.is_file() || m.is_symlink()) && !hash_stat(&mut h, m, now) {
            return None;
        }
    }
    Some(Digest::from_sha256(h.finalize().into()))
}

/// The input key of a layer: sha256 of the canonical JSON of its inputs.
pub fn input_key(inputs: &serde_json::Value) -> Digest {
    Digest::of(&crate::canonical::to_vec(inputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    /// A file written now, then left until its mtime and ctime are settled.
    fn settled_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let f = dir.join(name);
        fs::write(&f, bytes).unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        f
    }

    #[test]
    fn unchanged_files_are_not_read_again() {
        let home = tempfile::tempdir().unwrap();
        let fresh = home.path().join("fresh");
        fs::write(&fresh, b"new").unwrap();
        let f = settled_file(home.path(), "f", b"one");
        // Written just now: hashed every time, never recorded.
        fs::write(&fresh, b"new").unwrap();
        let cache = Cache::open(home.path());
        cache.file_hash(&fresh, &fs::metadata(&fresh).unwrap()).unwrap();
        cache.file_hash(&fresh, &fs::metadata(&fresh).unwrap()).unwrap();
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 2);

        let cache = Cache::open(home.path());
        let h1 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        let h2 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_eq!(h1, h2);
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 1);
        cache.save();
        let cache = Cache::open(home.path());
        cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 0);
        // Same size, mtime put back: the change time still tells.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, b"two").unwrap();
        fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        let h3 = cache.file_hash(&f, &fs::metadata(&f).unwrap()).unwrap();
        assert_ne!(h1, h3);
    }

    #[test]
    fn pruning_drops_only_stat_entries_that_cannot_answer() {
        let home = tempfile::tempdir().unwrap();
        let (kept, gone) = (settled_file(home.path(), "kept", b"one"), settled_file(home.path(), "gone", b"two"));
        let cache = Cache::open(home.path());
        for f in [&kept, &gone] {
            cache.file_hash(f, &fs::metadata(f).unwrap()).unwrap();
        }
        cache.save();
        fs::remove_file(&gone).unwrap();
        let record = home.path().join("cache/stat.json");
        let before = fs::read(&record).unwrap();
        let (count, bytes) = Cache::open(home.path()).prune_stats(true);
        assert!(count == 1 && bytes > 0, "{count} {bytes}");
        assert_eq!(fs::read(&record).unwrap(), before, "a dry run writes nothing");
        assert_eq!(Cache::open(home.path()).prune_stats(false), (count, bytes));
        let cache = Cache::open(home.path());
        cache.file_hash(&kept, &fs::metadata(&kept).unwrap()).unwrap();
        assert_eq!(cache.hashed.load(std::sync::atomic::Ordering::Relaxed), 0, "the live entry still answers");
        assert_eq!(fs::read(&record).unwrap().len() as u64, before.len() as u64 - bytes);
    }

    fn file_entry(path: &Path) -> Entry {
        let meta = fs::symlink_metadata(path).unwrap();
        Entry {
            path: "srv/a".into(),
            kind: Kind::File { src: path.to_owned(), size: meta.len(), stat: Some(std::sync::Arc::new(meta)) },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    #[test]
    fn stat_fingerprints_cover_every_input_and_refuse_unsettled_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = settled_file(dir.path(), "a", b"one");
        let fp = stat_fingerprint(&[file_entry(&f)], b"salt").expect("a settled file has a fingerprint");
        assert_eq!(stat_fingerprint(&[file_entry(&f)], b"salt").as_ref(), Some(&fp));
        assert_ne!(stat_fingerprint(&[file_entry(&f)], b"other").as_ref(), Some(&fp));
        let mut e = file_entry(&f);
        e.mode = 0o600;
        assert_ne!(stat_fingerprint(&[e], b"salt").as_ref(), Some(&fp));
        let mut e = file_entry(&f);
        e.path = "srv/b".into();
        assert_ne!(stat_fingerprint(&[e], b"salt").as_ref(), Some(&fp));
        let link = Entry { path: "srv/l".into(), kind: Kind::Symlink("a".into()), mode: 0o777, uid: 0, gid: 0, mtime: 0 };
        let with_link = stat_fingerprint(&[file_entry(&f), link.clone()], b"salt").unwrap();
        let other_link = Entry { kind: Kind::Symlink("b".into()), ..link };
        assert_ne!(stat_fingerprint(&[file_entry(&f), other_link], b"salt").unwrap(), with_link);

        // A rewrite with the mtime put back changes the ctime: the file is unsettled again, and
        // once settled its fingerprint differs.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, b"two").unwrap();
        fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        assert_eq!(stat_fingerprint(&[file_entry(&f)], b"salt"), None);
        std::thread::sleep(Duration::from_millis(2100));
        let after = stat_fingerprint(&[file_entry(&f)], b"salt").unwrap();
        assert_ne!(after, fp);
        // Bytes with no stat behind them have no fingerprint.
        let data = Entry { path: "etc/x".into(), kind: Kind::Data(Default::default()), mode: 0o644, uid: 0, gid: 0, mtime: 0 };
        assert_eq!(stat_fingerprint(&[data], b"salt"), None);
    }

    #[test]
    fn tree_fingerprints_see_added_changed_and_replaced_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/a"), b"one").unwrap();
        std::os::unix::fs::symlink("a", d.join("sub/l")).unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        let fp = |names: &[&str]| {
            let metas: Vec<(String, fs::Metadata)> =
                names.iter().map(|n| (n.to_string(), fs::symlink_metadata(d.join(n)).unwrap())).collect();
            tree_fingerprint(metas.iter().map(|(n, m)| (n.as_str(), m)))
        };
        let first = fp(&["sub", "sub/a", "sub/l"]).expect("settled");
        assert_eq!(fp(&["sub", "sub/a", "sub/l"]).unwrap(), first);
        assert_ne!(fp(&["sub", "sub/a"]).unwrap(), first);
        fs::set_permissions(d.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
        let chmod = fp(&["sub", "sub/a", "sub/l"]).unwrap();
        assert_ne!(chmod, first);
        // A replaced symlink is a new inode, unsettled at first.
        fs::remove_file(d.join("sub/l")).unwrap();
        std::os::unix::fs::symlink("b", d.join("sub/l")).unwrap();
        assert_eq!(fp(&["sub", "sub/a", "sub/l"]), None);
        std::thread::sleep(Duration::from_millis(2100));
        let relinked = fp(&["sub", "sub/a", "sub/l"]).unwrap();
        assert_ne!(relinked, chmod);
        fs::write(d.join("sub/a"), b"two").unwrap();
        assert_eq!(fp(&["sub", "sub/a", "sub/l"]), None);
    }
}

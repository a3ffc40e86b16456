//! `galley gc`'s mark and sweep over the store, the caches and the podman images galley loaded.
//!
//! Mark: from the [`Roots`] (what the kept locks name, the images galley containers use), every
//! blob they reach: a manifest's config and layers, an index's manifests. Sweep: store refs that
//! name no kept manifest; blobs not marked, each renamed into `GALLEY_HOME/trash` and then
//! deleted, so a blob is in the store whole or not at all; layer cache entries whose layer is
//! not kept, and the tree fingerprints that point at them; stat cache entries that can no longer
//! answer; temporary files older than [`TMP_GRACE`]; and the podman tags
//! `localhost/galley/<project>/...` of this home's projects that name no kept image.
//!
//! The caller holds [`super::home::exclusive`], so no writer is half-way through anything.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::cache::{Cache, CachedLayer};
use super::config::{self, AnyManifest};
use super::podman::{self, PodmanImage};
use super::store::{Store, StoreError};
use crate::domain::Digest;
use crate::exec::Runner;

/// Temporary files younger than this are left alone: a writer may still own them.
pub const TMP_GRACE: Duration = Duration::from_secs(60 * 60);
/// A blob larger than this is never read as a manifest while looking for a container's image.
const MANIFEST_LIMIT: u64 = 4 << 20;
/// The prefix of `crate::fsutil::write_atomic`'s temporary files.
const ATOMIC_TMP: &str = ".galley-tmp-";

/// What gc keeps, before any link is followed.
#[derive(Debug, Default, Clone)]
pub struct Roots {
    /// Manifests (or indexes), kept with everything they name.
    pub manifests: BTreeSet<Digest>,
    /// Blobs kept by themselves (the layers and configs a lock names).
    pub blobs: BTreeSet<Digest>,
    /// Images galley containers use: (podman image id, the name the container was made from).
    pub containers: Vec<(String, String)>,
}

/// How much of one kind went (or would go).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Freed {
    pub count: usize,
    pub bytes: u64,
}

impl Freed {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub store_blobs: Freed,
    pub store_refs: Freed,
    pub layer_cache: Freed,
    pub tree_cache: Freed,
    pub stat_cache: Freed,
    pub tmp_files: Freed,
    pub podman_images: Freed,
    /// Every kind's bytes together.
    pub bytes: u64,
    /// The store blobs kept.
    pub kept: Freed,
    /// Recorded projects whose directory is gone, dropped from the record.
    pub dropped_projects: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    /// Each kind with the name a person reads.
    pub fn kinds(&self) -> [(&'static str, Freed); 7] {
        [
            ("store blobs", self.store_blobs),
            ("store refs", self.store_refs),
            ("layer cache entries", self.layer_cache),
            ("tree fingerprints", self.tree_cache),
            ("stat cache entries", self.stat_cache),
            ("temporary files", self.tmp_files),
            ("podman images", self.podman_images),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a galley build, lock or apply is writing to {home}")]
    Busy { home: PathBuf },
    #[error("{0}")]
    Other(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// Every blob `roots` reach in `store` (the roots themselves included, present or not).
pub fn mark(store: &Store, blobs: &[(Digest, u64)], roots: &Roots) -> BTreeSet<Digest> {
    let mut kept = roots.blobs.clone();
    let mut todo: Vec<Digest> = roots.manifests.iter().copied().collect();
    for (id, name) in &roots.containers {
        // podman names an image by its config digest, with or without the algorithm.
        let with_algorithm = if id.contains(':') { id.clone() } else { format!("sha256:{id}") };
        let Ok(config) = Digest::parse(&with_algorithm) else { continue };
        todo.extend(manifests_of_config(store, blobs, &config, name));
        kept.insert(config);
    }
    let mut seen = BTreeSet::new();
    while let Some(digest) = todo.pop() {
        if !seen.insert(digest) {
            continue;
        }
        kept.insert(digest);
        match read_manifest(store, &digest) {
            Some(AnyManifest::Image(m)) => {
                kept.insert(m.config.digest);
                kept.extend(m.layers.into_iter().map(|l| l.digest));
            }
            Some(AnyManifest::Index(i)) => todo.extend(i.manifests.into_iter().map(|m| m.digest)),
            None => {}
        }
    }
    kept
}

fn read_manifest(store: &Store, digest: &Digest) -> Option<AnyManifest> {
    store.read_verified(digest).ok().and_then(|b| config::parse_any(&b).ok())
}

/// The stored manifests whose config is `config`: those whose digest starts as the short digest
/// in the tag `name` (`localhost/galley/<project>/<image>:<short>`), else any small blob's.
fn manifests_of_config(store: &Store, blobs: &[(Digest, u64)], config: &Digest, name: &str) -> Vec<Digest> {
    let short = name.strip_prefix("localhost/galley/").and_then(|n| n.rsplit_once(':')).map(|(_, t)| t).filter(|t| t.len() >= 12);
    let small: Vec<&Digest> = blobs.iter().filter(|(_, size)| *size <= MANIFEST_LIMIT).map(|(d, _)| d).collect();
    let by_tag: Vec<&Digest> = small.iter().copied().filter(|d| short.is_some_and(|s| d.hex().starts_with(s))).collect();
    let candidates = if by_tag.is_empty() { small } else { by_tag };
    candidates
        .into_iter()
        .filter(|d| matches!(read_manifest(store, d), Some(AnyManifest::Image(m)) if m.config.digest == *config))
        .copied()
        .collect()
}

/// Regular files in `dir` (none when it is missing): (path, name, size, modified).
fn files(dir: &Path) -> Vec<(PathBuf, String, u64, SystemTime)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(fs::Metadata::is_file)?;
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Some((e.path(), e.file_name().to_string_lossy().into_owned(), meta.len(), modified))
        })
        .collect();
    out.sort();
    out
}

/// The cache entries to remove: layer entries whose blob is not kept (or that do not parse), and
/// tree fingerprints that point at one of those. Fingerprints holding a project tree's hash
/// point at no layer entry and stay.
fn cache_garbage(cache_dir: &Path, kept: &BTreeSet<Digest>) -> (Vec<(PathBuf, u64)>, Vec<(PathBuf, u64)>) {
    let mut layers = Vec::new();
    let mut dropped_keys = BTreeSet::new();
    for (path, name, size, _) in files(&cache_dir.join("layers")) {
        let Some(hex) = name.strip_suffix(".json").filter(|_| !name.starts_with(ATOMIC_TMP)) else { continue };
        let entry = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<CachedLayer>(&b).ok());
        if !entry.is_some_and(|c| kept.contains(&c.digest)) {
            dropped_keys.insert(hex.to_owned());
            layers.push((path, size));
        }
    }
    let mut trees = Vec::new();
    for (path, name, size, _) in files(&cache_dir.join("trees")) {
        if name.starts_with(ATOMIC_TMP) {
            continue;
        }
        let value = fs::read_to_string(&path).unwrap_or_default();
        if Digest::parse(value.trim()).is_ok_and(|key| dropped_keys.contains(&key.hex())) {
            trees.push((path, size));
        }
    }
    (layers, trees)
}

/// Temporary files and directories older than [`TMP_GRACE`]: in `GALLEY_HOME/tmp` (but the
/// index lock), atomic writes' leftovers in the caches, and a crashed gc's trash.
fn tmp_garbage(home: &Path, now: SystemTime) -> Vec<(PathBuf, u64)> {
    let old = |modified: SystemTime| now.duration_since(modified).is_ok_and(|age| age >= TMP_GRACE);
    let mut out = Vec::new();
    for dir in [home.join("tmp"), home.join("trash")] {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.filter_map(Result::ok) {
            let Ok(meta) = fs::symlink_metadata(e.path()) else { continue };
            if e.file_name() == "index.lock" || !old(meta.modified().unwrap_or(now)) {
                continue;
            }
            out.push((e.path(), tree_size(&e.path())));
        }
    }
    for dir in ["cache", "cache/layers", "cache/trees", PROJECTS] {
        for (path, name, size, modified) in files(&home.join(dir)) {
            if name.starts_with(ATOMIC_TMP) && old(modified) {
                out.push((path, size));
            }
        }
    }
    out.sort();
    out
}

const PROJECTS: &str = super::home::PROJECTS_DIR;

fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map(|d| d.filter_map(Result::ok).map(|e| tree_size(&e.path())).sum()).unwrap_or(0)
}

/// The podman tags to remove: names `localhost/galley/<project>/...` of one of `projects` whose
/// short digest starts no kept blob and whose image no container uses.
pub fn podman_garbage(images: &[PodmanImage], projects: &BTreeSet<String>, kept: &BTreeSet<Digest>, used: &BTreeSet<String>) -> Vec<String> {
    let ours = |n: &str| projects.iter().any(|p| n.starts_with(&format!("localhost/galley/{p}/")));
    let kept_short = |n: &str| n.rsplit_once(':').is_some_and(|(_, short)| short.len() >= 12 && kept.iter().any(|d| d.hex().starts_with(short)));
    let mut out: Vec<String> = images
        .iter()
        .filter(|i| !used.contains(&i.id))
        .flat_map(|i| i.names.iter().filter(|n| ours(n) && !kept_short(n)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Remove each file or directory (only count them on a `dry_run`).
fn remove_files(paths: &[(PathBuf, u64)], dry_run: bool) -> Freed {
    let mut freed = Freed::default();
    for (path, size) in paths {
        let removed = dry_run || if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) { fs::remove_dir_all(path) } else { fs::remove_file(path) }.is_ok();
        if removed {
            freed.add(*size);
        }
    }
    freed
}

/// Remove what `roots` do not keep (or, with `dry_run`, only say what that would be).
/// `projects` names the projects whose podman tags may go; `podman` is `None` when podman is not
/// installed, and then no image is looked at.
pub fn collect(home: &Path, roots: &Roots, projects: &BTreeSet<String>, podman: Option<&dyn Runner>, dry_run: bool) -> Result<Report, GcError> {
    let store = Store::open(home)?;
    let blobs = store.blobs()?;
    let kept = mark(&store, &blobs, roots);
    let mut report = Report { dry_run, ..Report::default() };

    let index = store.index()?;
    let dropped_refs: Vec<_> = index.manifests.iter().filter(|d| !kept.contains(&d.digest)).collect();
    report.store_refs.count = dropped_refs.len();
    if !dry_run && !dropped_refs.is_empty() {
        store.drop_refs(|d| kept.contains(&d.digest))?;
    }

    if let Some(runner) = podman {
        let images = podman::images(runner).map_err(GcError::Other)?;
        let used: BTreeSet<String> = roots.containers.iter().map(|(id, _)| id.trim_start_matches("sha256:").to_owned()).collect();
        let mut gone = BTreeSet::new();
        for tag in podman_garbage(&images, projects, &kept, &used) {
            match if dry_run { Ok(()) } else { podman::remove_tag(runner, &tag) } {
                Ok(()) => {
                    gone.insert(tag);
                }
                Err(e) => report.warnings.push(format!("podman image {tag} stays: {e}")),
            }
        }
        report.podman_images.count = gone.len();
        report.podman_images.bytes =
            images.iter().filter(|i| i.containers == 0 && !i.names.is_empty() && i.names.iter().all(|n| gone.contains(n))).map(|i| i.size).sum();
    }

    let cache = Cache::open(home);
    let (layers, trees) = cache_garbage(cache.dir(), &kept);
    report.layer_cache = remove_files(&layers, dry_run);
    report.tree_cache = remove_files(&trees, dry_run);

    let garbage: Vec<&(Digest, u64)> = blobs.iter().filter(|(d, _)| !kept.contains(d)).collect();
    for (_, size) in blobs.iter().filter(|(d, _)| kept.contains(d)) {
        report.kept.add(*size);
    }
    if !garbage.is_empty() && !dry_run {
        let parent = home.join("trash");
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let trash = tempfile::Builder::new().prefix("gc-").tempdir_in(&parent).map_err(io_err(&parent))?;
        for (digest, size) in garbage {
            store.move_blob(digest, trash.path())?;
            report.store_blobs.add(*size);
        }
        trash.close().map_err(io_err(&parent))?;
    } else {
        for (_, size) in garbage {
            report.store_blobs.add(*size);
        }
    }

    let (count, bytes) = cache.prune_stats(dry_run);
    report.stat_cache = Freed { count, bytes };

    report.tmp_files = remove_files(&tmp_garbage(home, SystemTime::now()), dry_run);
    report.bytes = report.kinds().iter().map(|(_, f)| f.bytes).sum();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::{Descriptor, MEDIA_CONFIG, MEDIA_MANIFEST, Manifest};

    /// A manifest over a fresh config and `layers`; returns (manifest, config) digests.
    fn image(store: &Store, tag: &str, layers: &[&Digest]) -> (Digest, Digest) {
        let config = store.put(format!("{{\"tag\":\"{tag}\"}}").as_bytes()).unwrap();
        let layers = layers.iter().map(|l| Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", **l, 1)).collect();
        let m = Manifest { schema_version: 2, media_type: Some(MEDIA_MANIFEST.into()), config: Descriptor::new(MEDIA_CONFIG, config, 1), layers, annotations: None };
        (store.put_manifest(&m).unwrap().digest, config)
    }

    fn hex(d: &Digest) -> String {
        d.hex()
    }

    #[test]
    fn mark_keeps_what_locks_and_containers_reach_and_nothing_else() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let (base_layer, l1, l2, l3, l4) = (store.put(b"base").unwrap(), store.put(b"v1").unwrap(), store.put(b"v2").unwrap(), store.put(b"v3").unwrap(), store.put(b"v4").unwrap());
        let (m1, c1) = image(&store, "v1", &[&base_layer, &l1]);
        let (m2, c2) = image(&store, "v2", &[&base_layer, &l2]);
        let (m3, c3) = image(&store, "v3", &[&base_layer, &l3]);
        let (m4, c4) = image(&store, "v4", &[&base_layer, &l4]);
        let blobs = store.blobs().unwrap();
        let roots = Roots {
            manifests: [m1.clone()].into(),
            blobs: BTreeSet::new(),
            containers: vec![
                // Found by the short digest in its tag.
                (hex(&c3).to_owned(), format!("localhost/galley/p/box:{}", &hex(&m3)[..12])),
                // A container made from an id: found by looking at every small blob.
                (c4.to_string(), hex(&c4).to_owned()),
            ],
        };
        let kept = mark(&store, &blobs, &roots);
        for d in [&m1, &c1, &base_layer, &l1, &m3, &c3, &l3, &m4, &c4, &l4] {
            assert!(kept.contains(d), "{d} must be kept");
        }
        for d in [&m2, &c2, &l2] {
            assert!(!kept.contains(d), "{d} must go");
        }
        // A lock that names a layer by itself keeps just that layer.
        let only = mark(&store, &blobs, &Roots { blobs: [l2.clone()].into(), ..Roots::default() });
        assert_eq!(only, [l2].into());
    }

    #[test]
    fn collect_removes_the_rest_and_a_dry_run_removes_nothing() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let (l1, l2) = (store.put(b"layer one").unwrap(), store.put(b"layer two").unwrap());
        let (m1, _) = image(&store, "v1", &[&l1]);
        let (m2, c2) = image(&store, "v2", &[&l2]);
        store.set_ref("p/locked", Descriptor::new(MEDIA_MANIFEST, m1, 1)).unwrap();
        store.set_ref("p/box", Descriptor::new(MEDIA_MANIFEST, m2, 1)).unwrap();
        let cache = Cache::open(home.path());
        let entry = |d: &Digest| CachedLayer { digest: *d, diff_id: *d, size: 1, media_type: "m".into() };
        let (k1, k2, tree) = (Digest::of(b"k1"), Digest::of(b"k2"), Digest::of(b"tree"));
        let (f1, f2, f3) = (Digest::of(b"f1"), Digest::of(b"f2"), Digest::of(b"f3"));
        cache.put_layer(&k1, &entry(&l1));
        cache.put_layer(&k2, &entry(&l2));
        cache.put_tree_key(&f1, &k1);
        cache.put_tree_key(&f2, &k2);
        cache.put_tree_key(&f3, &tree);
        let tmp = home.path().join("tmp");
        fs::write(tmp.join("blob-old"), b"half a blob").unwrap();
        fs::write(tmp.join("blob-new"), b"being written").unwrap();
        let two_hours_ago = SystemTime::now() - 2 * TMP_GRACE;
        fs::File::options().write(true).open(tmp.join("blob-old")).unwrap().set_modified(two_hours_ago).unwrap();
        let roots = Roots { manifests: [m1.clone()].into(), ..Roots::default() };

        let files_now = || {
            let mut all: Vec<_> = walkdir(home.path());
            all.sort();
            all
        };
        let before = files_now();
        let garbage_bytes: u64 = [&m2, &c2, &l2].iter().map(|d| fs::metadata(store.blob_path(d)).unwrap().len()).sum();
        let dry = collect(home.path(), &roots, &BTreeSet::new(), None, true).unwrap();
        assert_eq!(files_now(), before, "a dry run removes nothing");
        assert_eq!((dry.store_blobs.count, dry.store_refs.count, dry.layer_cache.count, dry.tree_cache.count, dry.tmp_files.count), (3, 1, 1, 1, 1));

        let done = collect(home.path(), &roots, &BTreeSet::new(), None, false).unwrap();
        assert_eq!(done.kinds(), dry.kinds(), "a dry run reports what a real run does");
        assert_eq!(done.store_blobs.bytes, garbage_bytes);
        assert!(done.bytes >= garbage_bytes + b"half a blob".len() as u64);
        for d in [&m2, &c2, &l2] {
            assert!(!store.has_blob(d), "{d} must be gone");
        }
        assert!(store.has_blob(&m1) && store.has_blob(&l1));
        let refs: Vec<_> = store.index().unwrap().manifests.iter().map(|d| d.ref_name().unwrap().to_owned()).collect();
        assert_eq!(refs, vec!["p/locked"]);
        assert!(cache.layer(&k1).is_some() && cache.layer(&k2).is_none());
        assert_eq!((cache.tree_key(&f1), cache.tree_key(&f2), cache.tree_key(&f3)), (Some(k1), None, Some(tree)));
        assert!(!tmp.join("blob-old").exists() && tmp.join("blob-new").exists() && tmp.join("index.lock").exists());
        assert!(fs::read_dir(home.path().join("trash")).unwrap().next().is_none(), "the trash is emptied");
        let again = collect(home.path(), &roots, &BTreeSet::new(), None, false).unwrap();
        assert_eq!(again.bytes, 0, "a second gc finds nothing");
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn podman_tags_go_only_for_this_homes_projects_and_unkept_images() {
        let kept: BTreeSet<Digest> = [Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap()].into();
        let img = |id: &str, names: &[&str]| PodmanImage { id: id.into(), names: names.iter().map(|n| n.to_string()).collect(), size: 10, containers: 0 };
        let images = vec![
            img("1", &["localhost/galley/p/box:aaaaaaaaaaaa"]),
            img("2", &["localhost/galley/p/box:bbbbbbbbbbbb", "localhost/galley/other/box:bbbbbbbbbbbb"]),
            img("3", &["localhost/galley/p/run:cccccccccccc"]),
            img("4", &["localhost/galley/pp/box:dddddddddddd", "docker.io/library/busybox:1"]),
        ];
        let projects: BTreeSet<String> = ["p".to_owned()].into();
        let used: BTreeSet<String> = ["3".to_owned()].into();
        // Kept by the lock (1), used by a container (3), another home's project (other, pp).
        assert_eq!(podman_garbage(&images, &projects, &kept, &used), vec!["localhost/galley/p/box:bbbbbbbbbbbb"]);
    }
}

//! Reproducible OCI images: galley's own layer writer, an OCI-layout store under
//! `$GALLEY_HOME/store`, an input-addressed layer cache, verified base pulls behind an SSRF guard,
//! and RUN steps in rootless buildah whose output galley re-packs itself.
//!
//! An image is the base's layers (if any) followed by galley's layers, in this order:
//! 1. accounts (`users`/`groups`): /etc/passwd, /etc/group, /etc/shadow merged over the base's;
//! 2. files: every `files` copy, one layer;
//! 3. one layer per `run` step.
//!
//! Every layer has an input key (see [`cache`]); a layer whose key is known is reused as is.

pub mod accounts;
pub mod cache;
pub mod config;
pub mod gc;
pub mod guard;
pub mod home;
pub mod layer;
pub mod podman;
pub mod pull;
pub mod repro;
pub mod run;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{Digest, Platform, Reference};
use crate::model::{Compression, Image, Project};
use crate::settings::Settings;
use cache::{Cache, CachedLayer};
use config::{Descriptor, HistoryStep, Manifest};
use layer::{Entry, Kind};
pub use store::{Store, StoreError};

/// How `build` may reach the outside.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Never touch the network: bases must already be in the store.
    pub offline: bool,
    /// Base reference (as written in the image) -> manifest digest to use instead of resolving
    /// the tag.
    pub pinned_bases: BTreeMap<String, Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    /// As written in the image's `base`.
    pub reference: String,
    /// Digest of the image manifest for the platform (never of an index).
    pub digest: Digest,
    pub platform: Platform,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// What the layer is (`accounts`, `files`, `run 0`, ...).
    pub step: String,
    pub input_key: Digest,
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
    /// Reused from the cache in this build (not part of the record's identity).
    #[serde(skip)]
    pub cached: bool,
}

impl LayerRecord {
    fn of(step: &str, input_key: Digest, c: CachedLayer, cached: bool) -> LayerRecord {
        LayerRecord { step: step.into(), input_key, digest: c.digest, diff_id: c.diff_id, size: c.size, media_type: c.media_type, cached }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub config_digest: Digest,
    pub base: Option<BaseRecord>,
    /// galley's own layers, after the base's.
    pub layers: Vec<LayerRecord>,
    pub compression: Compression,
    /// The ref name in the store's index.json (`<project>/<image>`).
    pub ref_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image `{image}`: {message}")]
    Image { image: String, message: String },
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error(transparent)]
    Pull(#[from] pull::PullError),
    #[error("RUN step failed: {0}")]
    Run(String),
    #[error("no image named `{0}` in this project")]
    Unknown(String),
    #[error("{0}")]
    Other(String),
}

/// The mtime clamp: `SOURCE_DATE_EPOCH`, else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var(crate::env_vars::SOURCE_DATE_EPOCH).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The ref name of an image in the store.
pub fn ref_name(project: &Project, image: &str) -> String {
    format!("{}/{}", project.name, image)
}

/// Build `only` (every image when empty) into the store.
pub fn build(
    settings: &Settings,
    project: &Project,
    only: &[String],
    opts: &BuildOptions,
) -> Result<BTreeMap<String, BuiltImage>, ImageError> {
    build_with(settings, project, only, opts, &mut |_| {})
}

/// A progress event, for the CLI.
#[derive(Debug)]
pub enum Progress<'a> {
    Image(&'a str),
    Layer { image: &'a str, step: &'a str, cached: bool },
    Pull(&'a str),
}

pub fn build_with(
    settings: &Settings,
    project: &Project,
    only: &[String],
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<BTreeMap<String, BuiltImage>, ImageError> {
    for name in only {
        if !project.images.contains_key(name) {
            return Err(ImageError::Unknown(name.clone()));
        }
    }
    let _writing = home::writing(&settings.home, &settings.project_dir, &project.name)?;
    let store = Store::open(&settings.home)?;
    let cache = Cache::open(&settings.home);
    let ctx = Ctx { settings, project, store: &store, cache: &cache, epoch: source_date_epoch(), opts };
    let mut out = BTreeMap::new();
    for (name, image) in &project.images {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        progress(Progress::Image(name));
        let built = ctx.build_image(name, image, progress);
        cache.save();
        out.insert(name.clone(), built?);
    }
    Ok(out)
}

/// The digest of the manifest `reference` names for the platform of the first image that uses
/// it (linux/amd64 when none does), asking the registry.
pub fn resolve_base(settings: &Settings, project: &Project, reference: &Reference) -> Result<Digest, ImageError> {
    let platform = project
        .images
        .values()
        .find(|i| i.base.image() == Some(reference))
        .map(|i| i.platform.clone())
        .unwrap_or_else(Platform::linux_amd64);
    let store = Store::open(&settings.home)?;
    let client = pull::Puller::new(project, &store)?;
    Ok(client.resolve(&reference.to_string(), &platform)?)
}

struct Ctx<'a> {
    settings: &'a Settings,
    project: &'a Project,
    store: &'a Store,
    cache: &'a Cache,
    epoch: u64,
    opts: &'a BuildOptions,
}

/// A resolved base image.
pub struct Base {
    pub record: BaseRecord,
    pub manifest: Manifest,
    pub config: Value,
}

impl Ctx<'_> {
    fn build_image(&self, name: &str, image: &Image, progress: &mut dyn FnMut(Progress<'_>)) -> Result<BuiltImage, ImageError> {
        let platform = &image.platform;
        let base = match image.base.image() {
            None => None,
            Some(reference) => {
                let reference = reference.to_string();
                progress(Progress::Pull(&reference));
                Some(self.base(&reference, platform)?)
            }
        };
        let mut manifest_layers: Vec<Descriptor> = base.as_ref().map(|b| b.manifest.layers.clone()).unwrap_or_default();
        let mut diff_ids: Vec<Digest> = match &base {
            Some(b) => b
                .config
                .pointer("/rootfs/diff_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().and_then(|d| Digest::parse(d).ok())).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut records = Vec::new();
        let mut history = Vec::new();
        let common = json!({
            "compression": image.compression,
            "epoch": self.epoch,
            "chunk": layer::CHUNK,
            "format": 1,
        });

        if !image.users.is_empty() || !image.groups.is_empty() {
            let inputs = json!({
                "kind": "accounts",
                "users": image.users,
                "groups": image.groups,
                "base": base.as_ref().map(|b| &b.record.digest),
                "common": common,
            });
            let rec = self.layer("accounts", &inputs, image.compression, base.is_none() && records.is_empty(), || {
                let files = accounts::render(&self.base_accounts(base.as_ref())?, &image.users, &image.groups);
                let data = |path: &str, text: String, mode: u32| Entry {
                    path: path.into(),
                    kind: Kind::Data(Arc::new(text.into_bytes())),
                    mode,
                    uid: 0,
                    gid: 0,
                    mtime: self.epoch,
                };
                Ok(vec![
                    data("etc/passwd", files.passwd, 0o644),
                    data("etc/group", files.group, 0o644),
                    data("etc/shadow", files.shadow, 0o640),
                ])
            })?;
            progress(Progress::Layer { image: name, step: "accounts", cached: rec.cached });
            history.push(HistoryStep { created_by: "galley: accounts".into() });
            records.push(rec);
        }

        if !image.files.is_empty() {
            let t = std::time::Instant::now();
            let entries = walk_files(&self.settings.project_dir, image, self.epoch)?;
            self.timing("walk", t);
            let root_dir = base.is_none() && records.is_empty();
            let t = std::time::Instant::now();
            let fingerprint = cache::stat_fingerprint(&entries, &crate::canonical::to_vec(&json!({ "common": common, "root_dir": root_dir })));
            let known = fingerprint.as_ref().and_then(|f| self.cache.tree_key(f)).and_then(|key| self.cached_layer("files", &key));
            self.timing("fingerprint", t);
            let rec = match known {
                Some(rec) => rec,
                None => {
                    let rec = self.files_layer(&entries, &common, image.compression, root_dir)?;
                    if let Some(f) = &fingerprint {
                        self.cache.put_tree_key(f, &rec.input_key);
                    }
                    rec
                }
            };
            progress(Progress::Layer { image: name, step: "files", cached: rec.cached });
            history.push(HistoryStep { created_by: "galley: files".into() });
            records.push(rec);
        }

        if !image.run.is_empty() {
            let tree = self.project_tree_hash()?;
            for (i, step) in image.run.iter().enumerate() {
                let mut chain = diff_ids.clone();
                chain.extend(records.iter().map(|r| r.diff_id));
                let inputs = json!({
                    "kind": "run",
                    "command": step.command,
                    "network": step.network,
                    "parent": chain,
                    "env": image.env,
                    "project": tree,
                    "common": common,
                });
                let label = format!("run {i}");
                let mut parent_layers = manifest_layers.clone();
                parent_layers.extend(records.iter().map(|r| Descriptor::new(&r.media_type, r.digest, r.size)));
                let mut parent_diff = diff_ids.clone();
                parent_diff.extend(records.iter().map(|r| r.diff_id));
                let parent_config = config::image_config(
                    base.as_ref().map(|b| &b.config),
                    image,
                    platform,
                    &parent_diff,
                    &[],
                    self.epoch,
                );
                let rec = self.layer(&label, &inputs, image.compression, base.is_none() && records.is_empty(), || {
                    run::run_step(self.settings, self.store, &parent_layers, &parent_config, step, self.epoch)
                })?;
                progress(Progress::Layer { image: name, step: &label, cached: rec.cached });
                history.push(HistoryStep { created_by: format!("galley: run {}", step.command.join(" ")) });
                records.push(rec);
            }
        }

        for r in &records {
            manifest_layers.push(Descriptor::new(&r.media_type, r.digest, r.size));
            diff_ids.push(r.diff_id);
        }
        let cfg = config::image_config(base.as_ref().map(|b| &b.config), image, platform, &diff_ids, &history, self.epoch);
        let cfg_bytes = crate::canonical::to_vec(&cfg);
        let config_digest = self.store.put(&cfg_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(config::MEDIA_MANIFEST.into()),
            config: Descriptor::new(config::MEDIA_CONFIG, config_digest, cfg_bytes.len() as u64),
            layers: manifest_layers,
            annotations: None,
        };
        let mut desc = self.store.put_manifest(&manifest)?;
        desc.platform = Some(platform.clone());
        let ref_name = ref_name(self.project, name);
        self.store.set_ref(&ref_name, desc.clone())?;
        Ok(BuiltImage {
            manifest_digest: desc.digest,
            manifest_size: desc.size,
            config_digest,
            base: base.map(|b| b.record),
            layers: records,
            compression: image.compression,
            ref_name,
        })
    }

    /// The files layer of `entries`, keyed by their content: reused from the cache when its key
    /// is known, written otherwise.
    fn files_layer(&self, entries: &[Entry], common: &Value, compression: Compression, root_dir: bool) -> Result<LayerRecord, ImageError> {
        if self.cache.has_layers() {
            let t = std::time::Instant::now();
            let described = self.describe(entries, None)?;
            self.timing("hash", t);
            let inputs = json!({ "kind": "files", "entries": described, "common": common });
            return self.layer("files", &inputs, compression, root_dir, || Ok(entries.to_vec()));
        }
        // A cache with no layer at all has nothing to look up: hash the files while writing them
        // instead of reading them twice. The key comes out the same.
        let hashes = layer::Hashes::default();
        let written = self.write_layer("files", compression, root_dir, entries.to_vec(), Some(&hashes))?;
        let described = self.describe(entries, Some(&hashes))?;
        let inputs = json!({ "kind": "files", "entries": described, "common": common });
        Ok(self.record("files", layer_key(&inputs, root_dir), written))
    }

    /// Reuse the layer of `inputs` or make it from `entries()`.
    fn layer(
        &self,
        step: &str,
        inputs: &Value,
        compression: Compression,
        root_dir: bool,
        entries: impl FnOnce() -> Result<Vec<Entry>, ImageError>,
    ) -> Result<LayerRecord, ImageError> {
        let key = layer_key(inputs, root_dir);
        if let Some(rec) = self.cached_layer(step, &key) {
            return Ok(rec);
        }
        let written = self.write_layer(step, compression, root_dir, entries()?, None)?;
        Ok(self.record(step, key, written))
    }

    fn cached_layer(&self, step: &str, key: &Digest) -> Option<LayerRecord> {
        let c = self.cache.layer(key)?;
        let fits = fs::metadata(self.store.blob_path(&c.digest)).is_ok_and(|m| m.len() == c.size);
        fits.then(|| LayerRecord::of(step, *key, c, true))
    }

    /// Remember a freshly written layer under its input key.
    fn record(&self, step: &str, key: Digest, written: CachedLayer) -> LayerRecord {
        self.cache.put_layer(&key, &written);
        LayerRecord::of(step, key, written, false)
    }

    /// Write `entries` as a layer into the store (its input key is given by [`Self::record`]).
    fn write_layer(
        &self,
        step: &str,
        compression: Compression,
        root_dir: bool,
        entries: Vec<Entry>,
        hashes: Option<&layer::Hashes>,
    ) -> Result<CachedLayer, ImageError> {
        // RUN output already holds the directories it changed; inventing parents would
        // override the parent image's.
        let mut entries = layer::normalize_with(entries, self.epoch, !step.starts_with("run"));
        if root_dir {
            // The first layer of a scratch image carries the root directory, so `/` is 0755
            // rather than whatever the unpacker invents (containers/storage makes it 0555).
            entries.insert(0, Entry { path: ".".into(), kind: Kind::Dir, mode: 0o755, uid: 0, gid: 0, mtime: self.epoch });
        }
        let entries = link_hardlinks(entries);
        let t = std::time::Instant::now();
        let tmp = self.store.temp()?;
        let file = tmp.reopen().map_err(|e| ImageError::Other(format!("temp file: {e}")))?;
        let w = layer::write_hashing(&entries, compression, file, hashes)
            .map_err(|e| ImageError::Other(format!("writing the {step} layer: {e}")))?;
        self.store.commit(tmp, &w.digest)?;
        self.timing("write", t);
        let media_type = layer::media_type(compression).to_owned();
        Ok(CachedLayer { digest: w.digest, diff_id: w.diff_id, size: w.size, media_type })
    }

    /// Phase timings on stderr with -vvv.
    fn timing(&self, what: &str, since: std::time::Instant) {
        if self.settings.verbosity >= 3 {
            eprintln!("    {what}: {:.3}s", since.elapsed().as_secs_f64());
        }
    }

    /// What a files layer's bytes depend on, entry by entry (content by hash): one compact JSON
    /// array per entry, hashed in order (cheaper than one big JSON value for large trees).
    fn describe(&self, entries: &[Entry], known: Option<&layer::Hashes>) -> Result<Digest, ImageError> {
        let known = known.map(|k| k.lock().expect("hashes"));
        let lines: Vec<String> = entries
            .par_iter()
            .map(|e| -> Result<String, ImageError> {
                let (size, sha, link, target) = match &e.kind {
                    Kind::File { src, size, stat } => {
                        let meta = match stat {
                            Some(m) => m.clone(),
                            None => Arc::new(fs::metadata(src).map_err(|err| input_err(src, err))?),
                        };
                        let hash = match known.as_ref().and_then(|k| k.get(src)) {
                            Some(h) => {
                                self.cache.remember(src, &meta, h);
                                *h
                            }
                            None => self.cache.file_hash(src, &meta)?,
                        };
                        (*size, Some(hash), hardlink_id(&meta), None)
                    }
                    Kind::Symlink(t) | Kind::Hardlink(t) => (0, None, None, Some(t.as_str())),
                    _ => (0, None, None, None),
                };
                Ok(serde_json::to_string(&(&e.path, e.type_name(), e.mode, e.uid, e.gid, e.mtime, size, sha, link, target))
                    .expect("tuples serialize"))
            })
            .collect::<Result<_, _>>()?;
        let mut sha = <sha2::Sha256 as sha2::Digest>::new();
        for l in &lines {
            sha2::Digest::update(&mut sha, l.as_bytes());
            sha2::Digest::update(&mut sha, b"\n");
        }
        Ok(Digest::from_sha256(sha2::Digest::finalize(sha).into()))
    }

    /// A hash of every file of the project directory (but `.git`), for RUN steps, which see it.
    fn project_tree_hash(&self) -> Result<Digest, ImageError> {
        let files = walk_tree(&self.settings.project_dir)?;
        let fingerprint = cache::tree_fingerprint(files.iter().map(|f| (f.rel.as_str(), &f.meta)));
        if let Some(hash) = fingerprint.as_ref().and_then(|f| self.cache.tree_key(f)) {
            return Ok(hash);
        }
        let described: Vec<Value> = files
            .par_iter()
            .map(|Found { rel, path, meta }| -> Result<Value, ImageError> {
                let ft = meta.file_type();
                let content = if ft.is_file() {
                    json!(self.cache.file_hash(path, meta)?)
                } else if ft.is_symlink() {
                    json!(fs::read_link(path).map_err(|e| input_err(path, e))?.to_string_lossy())
                } else {
                    Value::Null
                };
                Ok(json!([rel, meta.mode(), content]))
            })
            .collect::<Result<_, _>>()?;
        let hash = cache::input_key(&json!(described));
        if let Some(f) = &fingerprint {
            self.cache.put_tree_key(f, &hash);
        }
        Ok(hash)
    }

    fn base(&self, reference: &str, platform: &Platform) -> Result<Base, ImageError> {
        let puller = pull::Puller::new(self.project, self.store)?;
        let pinned = self.opts.pinned_bases.get(reference);
        let mut bases: BTreeMap<String, Digest> = self.cache.read_json("bases.json");
        let key = format!("{reference} {platform}");
        let digest = match (pinned, self.opts.offline) {
            (Some(d), true) => {
                puller.ensure_local(d)?;
                *d
            }
            (Some(d), false) => puller.pull(reference, Some(d), platform)?,
            (None, true) => {
                let d = bases.get(&key).ok_or_else(|| pull::PullError::Offline {
                    reference: reference.into(),
                    message: "it was never pulled (and the build is offline)".into(),
                })?;
                puller.ensure_local(d)?;
                *d
            }
            (None, false) => puller.pull(reference, None, platform)?,
        };
        bases.insert(key, digest);
        self.cache.write_json("bases.json", &bases);
        let manifest = self.store.manifest(&digest)?;
        let config = self.store.json(&manifest.config.digest)?;
        Ok(Base { record: BaseRecord { reference: reference.into(), digest, platform: platform.clone() }, manifest, config })
    }

    fn base_accounts(&self, base: Option<&Base>) -> Result<accounts::Base, ImageError> {
        let Some(b) = base else { return Ok(accounts::Base::default()) };
        let mut found = read_from_layers(self.store, &b.manifest.layers, &["etc/passwd", "etc/group", "etc/shadow"])?;
        let mut take = |p: &str| found.remove(p).map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(accounts::Base { passwd: take("etc/passwd"), group: take("etc/group"), shadow: take("etc/shadow") })
    }
}

fn input_err(path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Input { path: path.to_owned(), message: e.to_string() }
}

fn layer_key(inputs: &Value, root_dir: bool) -> Digest {
    cache::input_key(&json!({ "inputs": inputs, "root_dir": root_dir }))
}

/// Hard links are identified by (device, inode) when a file has more than one link.
fn hardlink_id(meta: &fs::Metadata) -> Option<String> {
    (meta.nlink() > 1).then(|| format!("{}:{}", meta.dev(), meta.ino()))
}

/// Turn later entries of the same (device, inode) into hard links to the first one (in the
/// sorted order), so hard links survive and are stored once.
fn link_hardlinks(entries: Vec<Entry>) -> Vec<Entry> {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    entries
        .into_iter()
        .map(|mut e| {
            if let Kind::File { src, stat, .. } = &e.kind {
                let meta = match stat {
                    Some(m) => Ok(m.clone()),
                    None => fs::metadata(src).map(Arc::new),
                };
                if let Ok(meta) = meta
                    && meta.nlink() > 1 {
                        let id = (meta.dev(), meta.ino());
                        match first.get(&id) {
                            Some(target) => e.kind = Kind::Hardlink(target.clone()),
                            None => {
                                first.insert(id, e.path.clone());
                            }
                        }
                    }
            }
            e
        })
        .collect()
}

/// The image path `dst` as a relative layer path (`/srv/www` -> `srv/www`).
fn layer_path(dst: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in dst.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("`{dst}` leaves the image root")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The entries of an image's `files`, in declaration order (normalized later).
pub fn walk_files(project_dir: &Path, image: &Image, epoch: u64) -> Result<Vec<Entry>, ImageError> {
    let mut out = Vec::new();
    for copy in &image.files {
        let src = project_dir.join(&copy.src);
        let dst = layer_path(&copy.dst).map_err(|m| ImageError::Input { path: src.clone(), message: m })?;
        let own = Own { uid: copy.uid, gid: copy.gid, mode: copy.mode_bits(), epoch };
        walk_one(&src, dst, &own, &mut out)?;
    }
    Ok(out)
}

struct Own {
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    epoch: u64,
}

fn walk_one(src: &Path, dst: String, own: &Own, out: &mut Vec<Entry>) -> Result<(), ImageError> {
    let meta = fs::symlink_metadata(src).map_err(|e| input_err(src, e))?;
    if dst.is_empty() && !meta.is_dir() {
        return Err(ImageError::Input { path: src.into(), message: "only a directory can be copied onto the image root `/`".into() });
    }
    if !meta.is_dir() {
        out.push(copied(src.to_owned(), dst, meta, own)?);
        return Ok(());
    }
    // A directory copied onto `/` gives its contents; the root itself is not an entry.
    if !dst.is_empty() {
        out.push(copied(src.to_owned(), dst.clone(), meta, own)?);
    }
    let found = walk_under(src)?;
    out.reserve(found.len());
    for f in found {
        if f.path.file_name().and_then(|n| n.to_str()).is_none() {
            return Err(ImageError::Input { path: f.path, message: "file names must be UTF-8".into() });
        }
        let path = if dst.is_empty() { f.rel } else { format!("{dst}/{}", f.rel) };
        out.push(copied(f.path, path, f.meta, own)?);
    }
    Ok(())
}

/// The layer entry for host file `src` (metadata `meta`) copied to `dst`.
fn copied(src: PathBuf, dst: String, meta: fs::Metadata, own: &Own) -> Result<Entry, ImageError> {
    let mtime = (meta.mtime().max(0) as u64).min(own.epoch);
    let ft = meta.file_type();
    let entry = |kind: Kind, mode: u32| Entry { path: dst, kind, mode, uid: own.uid, gid: own.gid, mtime };
    if ft.is_dir() {
        Ok(entry(Kind::Dir, 0o755))
    } else if ft.is_file() {
        let exec = meta.permissions().mode() & 0o111 != 0;
        let mode = own.mode.unwrap_or(if exec { 0o755 } else { 0o644 });
        let size = meta.len();
        Ok(entry(Kind::File { src, size, stat: Some(Arc::new(meta)) }, mode))
    } else if ft.is_symlink() {
        let target = fs::read_link(&src).map_err(|e| input_err(&src, e))?;
        let target = target.to_str().ok_or_else(|| ImageError::Input { path: src.clone(), message: "link targets must be UTF-8".into() })?;
        Ok(entry(Kind::Symlink(target.into()), 0o777))
    } else {
        Err(ImageError::Input { path: src, message: "only regular files, directories and symlinks can be copied".into() })
    }
}

/// One thing found by [`walk_sorted`].
pub(crate) struct Found {
    /// Relative to the walk's root, `/`-separated (not-UTF-8 names lossily).
    pub rel: String,
    pub path: PathBuf,
    /// Not following symlinks.
    pub meta: fs::Metadata,
}

/// Everything under `dir`, as [`walk_sorted`] orders it.
pub(crate) fn walk_under(dir: &Path) -> Result<Vec<Found>, ImageError> {
    let mut out = Vec::new();
    walk_sorted(dir, "", &|_, _| true, &mut out)?;
    Ok(out)
}

/// Everything under `dir` (not `dir` itself) that `keep(parent_rel, name)` keeps, in name order
/// with each directory right before its contents. A large tree's walk is mostly `stat` calls, so
/// each directory's children are stat'ed in parallel, relative to the directory's descriptor,
/// and joined back in name order: the result does not depend on scheduling.
fn walk_sorted(dir: &Path, rel: &str, keep: &(dyn Fn(&str, &str) -> bool + Sync), out: &mut Vec<Found>) -> Result<(), ImageError> {
    let mut children: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(|e| input_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| input_err(dir, e))?;
    children.sort_unstable_by_key(fs::DirEntry::file_name);
    let parts: Vec<Vec<Found>> = children
        .into_par_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            keep(rel, &name).then_some((name, e))
        })
        .map(|(name, e)| {
            let path = e.path();
            let meta = e.metadata().map_err(|err| input_err(&path, err))?;
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let mut part = Vec::new();
            if meta.is_dir() {
                let (dir, sub) = (path.clone(), rel.clone());
                part.push(Found { rel, path, meta });
                walk_sorted(&dir, &sub, keep, &mut part)?;
            } else {
                part.push(Found { rel, path, meta });
            }
            Ok(part)
        })
        .collect::<Result<_, ImageError>>()?;
    out.reserve(parts.iter().map(Vec::len).sum());
    out.extend(parts.into_iter().flatten());
    Ok(())
}

/// Every entry under `dir` but `.git` and `galley.lock`, with its relative path. The lock is left
/// out because it records the steps' outputs: hashing it into their keys would be circular.
fn walk_tree(dir: &Path) -> Result<Vec<Found>, ImageError> {
    let mut out = Vec::new();
    walk_sorted(dir, "", &|parent, name| !(parent.is_empty() && (name == ".git" || name == crate::lang::LOCK_FILE)), &mut out)?;
    Ok(out)
}

/// The content of `paths` as the stacked `layers` leave them (upper layers and whiteouts win).
pub fn read_from_layers(store: &Store, layers: &[Descriptor], paths: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, ImageError> {
    let mut found = BTreeMap::new();
    let mut settled: Vec<String> = Vec::new();
    for l in layers.iter().rev() {
        let f = store.open_blob(&l.digest)?;
        let r = layer::decompressing_reader(&l.media_type, f).map_err(|e| ImageError::Other(format!("layer {}: {e}", l.digest)))?;
        let mut ar = tar::Archive::new(r);
        let mut opaque_dirs = Vec::new();
        let bad = |e: std::io::Error| ImageError::Other(format!("layer {}: {e}", l.digest));
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let p = entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_owned();
            let (parent, file) = p.rsplit_once('/').unwrap_or(("", p.as_str()));
            if file == ".wh..wh..opq" {
                opaque_dirs.push(parent.to_owned());
                continue;
            }
            let target = match file.strip_prefix(".wh.") {
                Some(hidden) if parent.is_empty() => hidden.to_owned(),
                Some(hidden) => format!("{parent}/{hidden}"),
                None => p.clone(),
            };
            if !paths.contains(&target.as_str()) || settled.contains(&target) {
                continue;
            }
            settled.push(target.clone());
            if file.starts_with(".wh.") {
                continue;
            }
            if entry.header().entry_type().is_file() {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(bad)?;
                found.insert(target, buf);
            }
        }
        for p in paths {
            if !settled.iter().any(|s| s == p) && opaque_dirs.iter().any(|d| p.starts_with(&format!("{d}/"))) {
                settled.push(p.to_string());
            }
        }
        if settled.len() == paths.len() {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_are_relative_and_stay_inside() {
        assert_eq!(layer_path("/srv/www/").unwrap(), "srv/www");
        assert_eq!(layer_path("/a/./b").unwrap(), "a/b");
        assert!(layer_path("/a/../../etc").is_err());
    }
}

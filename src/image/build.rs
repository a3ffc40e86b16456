//! Building an image: resolve its base, then make or reuse each layer (accounts, files, one per
//! RUN step) through the input-addressed cache, and write its config and manifest to the store.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use serde_json::{Value, json};

use super::cache::{self, Cache, CachedLayer};
use super::config::{self, Descriptor, HistoryStep, Manifest};
use super::layer::{self, Entry, Kind};
use super::{BuildOptions, BaseRecord, BuiltImage, ImageError, LayerRecord, Progress, Store, accounts, apt, deb, home, pull, run, walk};
use crate::domain::{Digest, Platform, Reference};
use crate::model::{Compression, Image, Project, Source};
use crate::settings::Env;

/// Build `only` (every image when empty) into the store.
pub fn build(
    settings: &Env,
    project: &Project,
    only: &[String],
    opts: &BuildOptions,
) -> Result<BTreeMap<String, BuiltImage>, ImageError> {
    build_with(settings, project, only, opts, &mut |_| {})
}

pub fn build_with(
    settings: &Env,
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
    let ctx = Ctx { settings, project, store: &store, cache: &cache, epoch: settings.source_date_epoch, opts };
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
pub fn resolve_base(settings: &Env, project: &Project, reference: &Reference) -> Result<Digest, ImageError> {
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

pub(super) struct Ctx<'a> {
    pub(super) settings: &'a Env,
    pub(super) project: &'a Project,
    pub(super) store: &'a Store,
    pub(super) cache: &'a Cache,
    pub(super) epoch: u64,
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
        if let Source::Containerfile(cf) = image.source() {
            return self.build_containerfile(name, image, cf, progress);
        }
        let platform = &image.platform;
        let base = match image.base.image() {
            None => None,
            Some(reference) => {
                progress(Progress::Pull(&reference.to_string()));
                Some(self.base(reference, platform)?)
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

        let packages = if image.packages.is_empty() {
            None
        } else {
            let closure = self.packages(name, image, base.as_ref(), &common, &mut records, &mut history, progress)?;
            Some(closure)
        };

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
            let entries = walk::walk_files(&self.settings.project_dir, image, self.epoch)?;
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
        let ref_name = super::ref_name(self.project, name);
        self.store.set_ref(&ref_name, desc.clone())?;
        Ok(BuiltImage {
            manifest_digest: desc.digest,
            manifest_size: desc.size,
            config_digest,
            base: base.map(|b| b.record),
            bases: Vec::new(),
            layers: records,
            compression: image.compression,
            ref_name,
            packages,
        })
    }

    /// Reuse the layer of `inputs` or make it from `entries()`.
    pub(super) fn layer(
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

    pub(super) fn cached_layer(&self, step: &str, key: &Digest) -> Option<LayerRecord> {
        let c = self.cache.layer(key)?;
        let fits = fs::metadata(self.store.blob_path(&c.digest)).is_ok_and(|m| m.len() == c.size);
        fits.then(|| LayerRecord::of(step, *key, c, true))
    }

    /// Remember a freshly written layer under its input key.
    pub(super) fn record(&self, step: &str, key: Digest, written: CachedLayer) -> LayerRecord {
        self.cache.put_layer(&key, &written);
        LayerRecord::of(step, key, written, false)
    }

    /// Write `entries` as a layer into the store (its input key is given by [`Self::record`]).
    pub(super) fn write_layer(
        &self,
        step: &str,
        compression: Compression,
        root_dir: bool,
        entries: Vec<Entry>,
        hashes: Option<&layer::Hashes>,
    ) -> Result<CachedLayer, ImageError> {
        // RUN (and Containerfile) output already holds the directories it changed; inventing
        // parents would override the parent image's.
        let from_steps = step.starts_with("run") || step.starts_with("containerfile");
        let mut entries = layer::normalize_with(entries, self.epoch, !from_steps);
        if root_dir {
            // The first layer of a scratch image carries the root directory, so `/` is 0755
            // rather than whatever the unpacker invents (containers/storage makes it 0555).
            entries.insert(0, Entry { path: ".".into(), kind: Kind::Dir, mode: 0o755, uid: 0, gid: 0, mtime: self.epoch });
        }
        let entries = walk::link_hardlinks(entries);
        let t = std::time::Instant::now();
        let tmp = self.store.temp()?;
        // A full disk is named before the layer is written, not half way through it; a write
        // that fails anyway leaves nothing behind (the temporary file goes with `tmp`).
        if let Some(dir) = tmp.path().parent() {
            crate::fsutil::ensure_free(dir, layer::size_bound(&entries))
                .map_err(|e| ImageError::Other(format!("cannot write the {step} layer: {e}")))?;
        }
        let file = tmp.reopen().map_err(|e| ImageError::Other(format!("temp file: {e}")))?;
        let w = layer::write(&entries, compression, file, layer::WriteOptions { hashes, ..Default::default() })
            .map_err(|e| ImageError::Other(format!("writing the {step} layer: {e}")))?;
        self.store.commit(tmp, &w.digest)?;
        self.timing("write", t);
        let media_type = layer::media_type(compression).to_owned();
        Ok(CachedLayer { digest: w.digest, diff_id: w.diff_id, size: w.size, media_type })
    }

    /// Phase timings on stderr with -vvv.
    pub(super) fn timing(&self, what: &str, since: std::time::Instant) {
        if self.opts.timings {
            eprintln!("    {what}: {:.3}s", since.elapsed().as_secs_f64());
        }
    }


    pub(super) fn base(&self, base: &Reference, platform: &Platform) -> Result<Base, ImageError> {
        let puller = pull::Puller::new(self.project, self.store)?;
        let pinned = self.opts.pinned_bases.get(base);
        let reference = base.to_string();
        let reference = reference.as_str();
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
        super::screen::screen_base(self.cache, self.store, reference, &manifest)?;
        let config = self.store.json(&manifest.config.digest)?;
        Ok(Base { record: BaseRecord { reference: base.clone(), digest, platform: platform.clone() }, manifest, config })
    }

    /// One layer per package of the image's closure (pinned, or resolved now), in name order.
    /// A layer's input key is the package's SHA-256 and the writer's settings, so adding a
    /// package writes one layer; only packages whose layer is not cached are fetched.
    #[allow(clippy::too_many_arguments)]
    fn packages(
        &self,
        name: &str,
        image: &Image,
        base: Option<&Base>,
        common: &Value,
        records: &mut Vec<LayerRecord>,
        history: &mut Vec<HistoryStep>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<apt::Resolution, ImageError> {
        let source = image.debian.as_ref().ok_or_else(|| apt::AptError::NoSource { image: name.to_owned() })?;
        let mut http: Option<apt::Http> = None;
        let closure = match self.opts.pinned_packages.get(name) {
            Some(pinned) => pinned.clone(),
            None if self.opts.offline => {
                return Err(ImageError::Image {
                    image: name.into(),
                    message: "its packages are not pinned in galley.lock (and the build is offline)".into(),
                });
            }
            None => {
                let not_before = self.opts.release_not_before.get(name).copied();
                apt::resolve(http.insert(apt::Http::new(self.project)?), &self.settings.project_dir, name, image, not_before)?
            }
        };
        let root_dir = base.is_none();
        let redirects = match base {
            Some(b) => self.base_dir_links(b)?,
            None => deb::Redirects::new(),
        };
        let key_of = |package: &str, pin: &crate::debian::Pinned| {
            let inputs = json!({
                "kind": "deb",
                "package": package,
                "sha256": pin.sha256,
                "base": base.map(|b| &b.record.digest),
                "common": common,
            });
            layer_key(&inputs, root_dir)
        };
        let missing: Vec<(String, String, crate::debian::Pinned)> = closure
            .packages
            .iter()
            .filter(|(p, pin)| self.cached_layer(&format!("package {p}"), &key_of(p, pin)).is_none())
            .map(|(p, pin)| (p.clone(), source.mirror.join(&pin.filename), pin.clone()))
            .collect();
        if !missing.is_empty() {
            let t = std::time::Instant::now();
            let client = match http {
                Some(ref h) => h,
                None => http.insert(apt::Http::new(self.project)?),
            };
            client.download(self.store, &missing)?;
            self.timing("fetch packages", t);
        }
        for (package, pin) in &closure.packages {
            let step = format!("package {package}");
            let key = key_of(package, pin);
            let rec = match self.cached_layer(&step, &key) {
                Some(rec) => rec,
                None => {
                    // Fetched just now (hashed while streaming) or earlier: checked again before use;
                    // one changed on disk since is fetched again.
                    if self.store.verify(&pin.sha256).is_err() {
                        self.store.remove_blob(&pin.sha256)?;
                        let client = match http {
                            Some(ref h) => h,
                            None => http.insert(apt::Http::new(self.project)?),
                        };
                        client.download(self.store, &[(package.clone(), source.mirror.join(&pin.filename), pin.clone())])?;
                        self.store.verify(&pin.sha256)?;
                    }
                    let file = self.store.open_blob(&pin.sha256)?;
                    let spill = tempfile::tempfile_in(self.store.root()).map_err(|e| ImageError::Other(format!("spill file: {e}")))?;
                    let entries = deb::entries(package, file, spill, self.epoch, &redirects)?;
                    let written = self.write_layer(&step, image.compression, root_dir, entries, None)?;
                    self.record(&step, key, written)
                }
            };
            progress(Progress::Layer { image: name, step: &step, cached: rec.cached });
            history.push(HistoryStep { created_by: format!("galley: package {package} {}", pin.version) });
            records.push(rec);
        }
        Ok(closure)
    }

    /// The top-level directory symlinks of a base (merged-usr), kept per base digest under
    /// `cache/dir-links.json` so a rebuild does not read the base's layers again.
    fn base_dir_links(&self, base: &Base) -> Result<deb::Redirects, ImageError> {
        let mut known: BTreeMap<String, deb::Redirects> = self.cache.read_json("dir-links.json");
        if let Some(links) = known.get(&base.record.digest.to_string()) {
            return Ok(links.clone());
        }
        let mut readers: Vec<Box<dyn std::io::Read>> = Vec::new();
        for l in &base.manifest.layers {
            let f = self.store.open_blob(&l.digest)?;
            readers.push(layer::decompressing_reader(&l.media_type, f).map_err(|e| ImageError::Other(format!("base layer {}: {e}", l.digest)))?);
        }
        let links = deb::top_level_dir_links(readers).map_err(|e| ImageError::Other(format!("base `{}`: {e}", base.record.reference)))?;
        known.insert(base.record.digest.to_string(), links.clone());
        self.cache.write_json("dir-links.json", &known);
        Ok(links)
    }

    fn base_accounts(&self, base: Option<&Base>) -> Result<accounts::Base, ImageError> {
        let Some(b) = base else { return Ok(accounts::Base::default()) };
        let mut found = super::read_from_layers(self.store, &b.manifest.layers, &["etc/passwd", "etc/group", "etc/shadow"])
            .map_err(|e| ImageError::Other(format!("base `{}`: {e}", b.record.reference)))?;
        let mut take = |p: &str| found.remove(p).map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(accounts::Base { passwd: take("etc/passwd"), group: take("etc/group"), shadow: take("etc/shadow") })
    }
}

pub(super) fn layer_key(inputs: &Value, root_dir: bool) -> Digest {
    cache::input_key(&json!({ "inputs": inputs, "root_dir": root_dir }))
}

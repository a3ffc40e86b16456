//! A Containerfile image built by buildah, confined, from pinned bases only, and re-packed.
//!
//! Every image the file names is pulled (verified, behind the SSRF guard, pinned by the lock),
//! screened like a native base, and copied into buildah's storage by digest; the file is rewritten
//! to name those copies by image id, and buildah runs with `--pull=never`, `--cap-drop all`,
//! `--network none` (unless the image declares network), no volumes and no runtime socket, on a
//! snapshot of the context in a temporary directory, within [`Env::run_timeout`]. Build secrets
//! are files in a 0700 directory that is removed when the build ends. The layers buildah adds
//! above the target stage's base are re-packed by galley's writer and the config rebuilt from
//! the settings the file made, so the digest depends only on the bytes the steps produced.
//!
//! The result is keyed by an input key (the Containerfile, the context's digest, the build
//! arguments, target, network, the pinned bases' digests, the secret ids, compression and the
//! epoch): a build whose key is known runs no buildah at all.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::build::{Base, Ctx, layer_key};
use super::super::cache::{self, CachedLayer};
use super::super::config::{self, Descriptor, Index, Manifest};
use super::super::{BuiltImage, ImageError, LayerRecord, Progress, run};
use super::{context, parse};
use crate::domain::{Digest, Reference};
use crate::exec::{Cmd, Runner, System};
use crate::model::{ContainerfileBuild, Image};
use crate::secrets::SecretValue;

/// The image config keys a Containerfile's instructions set, which galley keeps; everything
/// else buildah writes (hostname, build host data) is left out.
const CONFIG_KEYS: &[&str] = &["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal"];

/// Where a small context's snapshot goes: the memory file system every Linux system mounts.
const MEMORY_DIR: &str = "/dev/shm";
/// The largest context (bytes of its files) copied to [`MEMORY_DIR`].
const MAX_IN_MEMORY: u64 = 512 << 20;

/// Labels buildah adds about itself.
const BUILDER_LABELS: &[&str] = &["io.buildah.version"];

/// What a build with a known input key made: the layers above the base and the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    layers: Vec<CachedLayer>,
    config: Digest,
    config_size: u64,
}

fn err(image: &str, message: impl std::fmt::Display) -> ImageError {
    ImageError::Image { image: image.into(), message: message.to_string() }
}

impl Ctx<'_> {
    pub(in super::super) fn build_containerfile(
        &self,
        name: &str,
        image: &Image,
        cf: &ContainerfileBuild,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<BuiltImage, ImageError> {
        let (text, parsed) = super::load(&self.settings.project_dir, cf).map_err(|e| err(name, e))?;
        let target = parsed.target(cf.target.as_deref()).map_err(|e| err(name, format!("{}: {e}", cf.path)))?;
        for (id, line) in &parsed.secrets {
            if !cf.secrets.contains_key(id) {
                return Err(err(
                    name,
                    format!("{}:{line}: the step mounts secret `{id}`, which is not declared\nhelp: add `{id}` to `images.{name}.containerfile.secrets` with its source", cf.path),
                ));
            }
        }
        if !parsed.add_urls.is_empty() && !cf.network {
            let line = parsed.add_urls[0];
            return Err(err(
                name,
                format!("{}:{line}: ADD from a URL needs network, which the build does not have\nhelp: set `containerfile.network = true` (the download is not reproducible), or copy the file into the context", cf.path),
            ));
        }
        let mut bases: BTreeMap<Reference, Base> = BTreeMap::new();
        for reference in super::external_images(&parsed) {
            progress(Progress::Pull(&reference.to_string()));
            let base = self.base(&reference, &image.platform)?;
            bases.insert(reference, base);
        }
        let root = parsed.root_image(target).map(|r| &bases[r]);

        let t = std::time::Instant::now();
        let dir = super::context_dir(&self.settings.project_dir, cf)?;
        let ignore = context::Ignore::read(&self.settings.project_dir, &dir)?;
        let files = context::files(&dir, &ignore, super::context_is_project(cf))?;
        let context_digest = self.context_digest(&files)?;
        self.timing("context", t);

        let inputs = json!({
            "kind": "containerfile",
            "format": 1,
            "containerfile": Digest::of(text.as_bytes()),
            "context": context_digest,
            "build_args": cf.build_args,
            "target": cf.target,
            "network": cf.network,
            "secrets": cf.secrets.keys().collect::<Vec<_>>(),
            "bases": bases.iter().map(|(r, b)| (r.to_string(), b.record.digest)).collect::<BTreeMap<_, _>>(),
            "platform": image.platform,
            "compression": image.compression,
            "epoch": self.epoch,
            "chunk": super::super::layer::CHUNK,
        });
        let key = cache::input_key(&inputs);
        let record_name = format!("containerfile/{}.json", key.hex());
        let known: Option<Record> = self.cache.read_json::<Option<Record>>(&record_name).filter(|r| {
            self.store.has_blob(&r.config) && r.layers.iter().all(|l| fs::metadata(self.store.blob_path(&l.digest)).is_ok_and(|m| m.len() == l.size))
        });
        let cached = known.is_some();
        let record = match known {
            Some(r) => r,
            None => {
                let r = self.run_buildah(name, image, cf, &text, &parsed, &bases, root, &files)?;
                let _ = fs::create_dir_all(self.cache.dir().join("containerfile"));
                self.cache.write_json(&record_name, &Some(r.clone()));
                r
            }
        };
        let layers: Vec<LayerRecord> = record
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let step = step_name(i, record.layers.len());
                LayerRecord::of(&step, layer_key(&json!({ "containerfile": key, "layer": i }), false), l.clone(), cached)
            })
            .collect();
        for l in &layers {
            progress(Progress::Layer { image: name, step: &l.step, cached });
        }
        let mut manifest_layers: Vec<Descriptor> = root.map(|b| b.manifest.layers.clone()).unwrap_or_default();
        manifest_layers.extend(layers.iter().map(|r| Descriptor::new(&r.media_type, r.digest, r.size)));
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(config::MEDIA_MANIFEST.into()),
            config: Descriptor::new(config::MEDIA_CONFIG, record.config, record.config_size),
            layers: manifest_layers,
            annotations: None,
        };
        let mut desc = self.store.put_manifest(&manifest)?;
        desc.platform = Some(image.platform.clone());
        let ref_name = super::super::ref_name(self.project, name);
        self.store.set_ref(&ref_name, desc.clone())?;
        Ok(BuiltImage {
            manifest_digest: desc.digest,
            manifest_size: desc.size,
            config_digest: record.config,
            base: None,
            bases: bases.into_values().map(|b| b.record).collect(),
            layers,
            packages: None,
            compression: image.compression,
            ref_name,
        })
    }

    /// The context's digest through the stat cache, and for a settled tree through its stat
    /// fingerprint without looking at any file.
    fn context_digest(&self, files: &[crate::image::walk::Found]) -> Result<Digest, ImageError> {
        let fingerprint = cache::tree_fingerprint(files.iter().map(|f| (f.rel.as_str(), &f.meta)))
            .map(|f| Digest::of(format!("containerfile context {f}").as_bytes()));
        if let Some(d) = fingerprint.as_ref().and_then(|f| self.cache.tree_key(f)) {
            return Ok(d);
        }
        let digest = context::digest(files, &|p, m| Ok(self.cache.file_hash(p, m)?))?;
        if let Some(f) = &fingerprint {
            self.cache.put_tree_key(f, &digest);
        }
        Ok(digest)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_buildah(
        &self,
        name: &str,
        image: &Image,
        cf: &ContainerfileBuild,
        text: &str,
        parsed: &parse::Containerfile,
        bases: &BTreeMap<Reference, Base>,
        root: Option<&Base>,
        files: &[crate::image::walk::Found],
    ) -> Result<Record, ImageError> {
        let runner: &dyn Runner = &System;
        if !crate::exec::available("buildah") {
            return Err(err(name, "Containerfile builds need buildah, which is not on PATH\nhelp: install buildah (scripts/setup.sh does)"));
        }
        let runtime = self.settings.oci_runtime.usable().map_err(|(message, help)| err(name, format!("{message}\nhelp: {help}")))?;
        let work = run::work_dir(&self.settings.home.join("tmp"))?;
        // A small context is copied to memory (creating thousands of files on a journaling file
        // system costs more than the build's own copy); a large one next to the store.
        let bytes: u64 = files.iter().filter(|f| f.meta.is_file()).map(|f| f.meta.len()).sum();
        let shm = Path::new(MEMORY_DIR);
        let in_memory = (bytes <= MAX_IN_MEMORY && crate::fsutil::ensure_free(shm, bytes.saturating_mul(2)).is_ok())
            .then(|| tempfile::Builder::new().prefix("galley-context-").tempdir_in(shm).ok())
            .flatten();
        if in_memory.is_none() {
            crate::fsutil::ensure_free(work.path(), bytes).map_err(|e| {
                err(name, format!("the build context's {bytes} bytes cannot be copied for the build: {e}\nhelp: free space, or leave large files out of the context in its .containerignore"))
            })?;
        }
        // Under a 0700 directory either way, so no other user of the host reads the copy.
        let snapshot = in_memory.as_ref().map(|d| d.path()).unwrap_or(work.path()).join("context");
        fs::create_dir(&snapshot).map_err(|e| err(name, format!("{}: {e}", snapshot.display())))?;
        let t = std::time::Instant::now();
        context::snapshot(files, &snapshot)?;
        self.timing("snapshot", t);

        // Each base into buildah's storage by digest; the file names them by image id.
        let mut loaded = Loaded { runner, names: Vec::new() };
        let mut ids: BTreeMap<&Reference, String> = BTreeMap::new();
        for (reference, base) in bases {
            ids.insert(reference, loaded.load(self, work.path(), base).map_err(|e| err(name, format!("base `{reference}`: {e}")))?);
        }
        let rewritten = parsed.rewrite(text, |r| ids[r].clone());
        let file = work.path().join("Containerfile");
        fs::write(&file, rewritten).map_err(|e| err(name, format!("{}: {e}", file.display())))?;

        // Secrets: files in a private directory, removed with `work`.
        let secrets_dir = work.path().join("secrets");
        fs::DirBuilder::new().mode(0o700).create(&secrets_dir).map_err(|e| err(name, format!("{}: {e}", secrets_dir.display())))?;
        let values = self.secret_values(cf)?;
        let mut args = build_args(cf, &file, runtime, self.epoch, &image.platform.to_string());
        for (i, (id, value)) in values.iter().enumerate() {
            let path = secrets_dir.join(format!("s{i}"));
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| err(name, format!("secret file: {e}")))?;
            f.write_all(value.expose_secret()).map_err(|e| err(name, format!("secret file: {e}")))?;
            args.extend(["--secret".into(), format!("id={id},src={}", path.display())]);
        }
        let tag = format!("localhost/galley-build/{}:latest", Digest::of(work.path().as_os_str().as_encoded_bytes()).short());
        args.extend(["--tag".into(), tag.clone(), snapshot.display().to_string()]);
        let built = Built { runner, tag: tag.clone() };
        let cmd = Cmd::new("buildah").args(args).timeout(self.settings.run_timeout).stdout_tail();
        let t = std::time::Instant::now();
        let out = runner.run(&cmd).map_err(|e| err(name, e))?;
        self.timing("buildah build", t);
        let redact = |s: String| values.values().fold(s, |s, v| v.redact_in(&s));
        if out.timed_out {
            return Err(err(name, format!(
                "the build of {} was stopped after its time limit of {}\nhelp: make the build finish sooner, or raise {}",
                cf.path,
                crate::exec::seconds(self.settings.run_timeout),
                crate::env_vars::GALLEY_RUN_TIMEOUT_SECS
            )));
        }
        if !out.success() {
            return Err(ImageError::Run(redact(format!(
                "the build of {} exited with {}:\n{}{}",
                cf.path,
                out.code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()),
                crate::exec::tail(&out.stdout_str(), 10),
                crate::exec::tail(&out.stderr_str(), 20)
            ))));
        }
        drop(values);
        let _ = fs::remove_dir_all(&secrets_dir);

        let layout = work.path().join("out");
        let t = std::time::Instant::now();
        runner
            .check(
                &Cmd::new("buildah")
                    .args(["push", "--quiet", "--disable-compression", "--format", "oci", tag.as_str(), &format!("oci:{}:out", layout.display())])
                    .timeout(run::COMMIT_TIMEOUT),
            )
            .map_err(|e| err(name, e))?;
        drop(built);
        drop(loaded);
        drop(in_memory);
        self.timing("buildah push", t);
        self.repack_output(name, image, &layout, root)
    }

    /// The values of the build's secrets, by id.
    fn secret_values(&self, cf: &ContainerfileBuild) -> Result<BTreeMap<String, SecretValue>, ImageError> {
        if cf.secrets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let secret_err = |e: crate::secrets::SecretError| {
            let help = e.help().map(|h| format!("\nhelp: {h}")).unwrap_or_default();
            ImageError::Other(format!("build secret: {e}{help}"))
        };
        let mut resolver = crate::secrets::Resolver::new(self.settings.project_dir.clone(), &System);
        if cf.secrets.values().any(|s| matches!(s, crate::model::Secret::Store(_))) {
            let key = crate::secrets::master_key().map_err(|e| ImageError::Other(format!("build secret: {e}")))?;
            let store = crate::secrets::Store::open(&self.settings.home, &self.project.name, key).map_err(|e| ImageError::Other(format!("build secret: {e}")))?;
            resolver = resolver.with_store(store);
        }
        cf.secrets.iter().map(|(id, source)| Ok((id.clone(), resolver.resolve(id, source).map_err(secret_err)?))).collect()
    }

    /// The layers buildah added above `root`'s, re-packed, and the config rebuilt.
    fn repack_output(&self, name: &str, image: &Image, layout: &Path, root: Option<&Base>) -> Result<Record, ImageError> {
        let index: Index = serde_json::from_slice(&fs::read(layout.join("index.json")).map_err(|e| err(name, format!("buildah's output: {e}")))?)
            .map_err(|e| err(name, format!("buildah's index.json: {e}")))?;
        let blob = |d: &Digest| layout.join("blobs/sha256").join(d.hex());
        let m = index.manifests.first().ok_or_else(|| err(name, "buildah wrote no image"))?;
        let manifest: Manifest = serde_json::from_slice(&fs::read(blob(&m.digest)).map_err(|e| err(name, e))?).map_err(|e| err(name, e))?;
        let built_config: Value = serde_json::from_slice(&fs::read(blob(&manifest.config.digest)).map_err(|e| err(name, e))?).map_err(|e| err(name, e))?;
        let base_diff_ids = root.map(|b| diff_ids(&b.config)).unwrap_or_default();
        let built_diff_ids = diff_ids(&built_config);
        if built_diff_ids.len() < base_diff_ids.len() || built_diff_ids[..base_diff_ids.len()] != base_diff_ids[..] || manifest.layers.len() != built_diff_ids.len() {
            return Err(err(name, "buildah's image does not start with the layers of the pinned base"));
        }
        let upper = &manifest.layers[base_diff_ids.len()..];
        let mut layers = Vec::new();
        let mut all_diff_ids = base_diff_ids.clone();
        for (i, l) in upper.iter().enumerate() {
            let f = fs::File::open(blob(&l.digest)).map_err(|e| err(name, e))?;
            let r = super::super::layer::decompressing_reader(&l.media_type, f).map_err(|e| err(name, e))?;
            let spill = tempfile::tempfile_in(self.settings.home.join("tmp")).map_err(|e| err(name, format!("spill file: {e}")))?;
            let entries = run::repack(r, spill, self.epoch)?;
            let step = step_name(i, upper.len());
            let root_dir = root.is_none() && i == 0;
            let written = self.write_layer(&step, image.compression, root_dir, entries, None)?;
            all_diff_ids.push(written.diff_id);
            layers.push(written);
        }
        let cfg = normalized_config(&built_config, root.map(|b| &b.config), image, &all_diff_ids, upper.len(), self.epoch);
        let bytes = crate::canonical::to_vec(&cfg);
        let config = self.store.put(&bytes)?;
        Ok(Record { layers, config, config_size: bytes.len() as u64 })
    }
}

fn step_name(i: usize, n: usize) -> String {
    if n == 1 { "containerfile".into() } else { format!("containerfile {i}") }
}

fn diff_ids(config: &Value) -> Vec<Digest> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().and_then(|d| Digest::parse(d).ok())).collect())
        .unwrap_or_default()
}

/// The image config: the settings the Containerfile made (from buildah's config, nothing about
/// the build host), the base's history and one entry per re-packed layer, all dated `epoch`.
fn normalized_config(built: &Value, base: Option<&Value>, image: &Image, diff_ids: &[Digest], added: usize, epoch: u64) -> Value {
    let mut cfg = serde_json::Map::new();
    if let Some(c) = built.get("config").and_then(Value::as_object) {
        for k in CONFIG_KEYS {
            if let Some(v) = c.get(*k).filter(|v| !v.is_null()) {
                cfg.insert((*k).into(), v.clone());
            }
        }
    }
    if let Some(Value::Object(labels)) = cfg.get_mut("Labels") {
        labels.retain(|k, _| !BUILDER_LABELS.contains(&k.as_str()));
        if labels.is_empty() {
            cfg.remove("Labels");
        }
    }
    let created = config::created(epoch);
    let mut history: Vec<Value> = base.and_then(|b| b.get("history")).and_then(Value::as_array).cloned().unwrap_or_default();
    for _ in 0..added {
        history.push(json!({ "created": created, "created_by": "galley: containerfile", "comment": "galley" }));
    }
    let mut out = json!({
        "architecture": image.platform.architecture(),
        "os": image.platform.os(),
        "created": created,
        "config": Value::Object(cfg),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    if let Some(v) = image.platform.variant() {
        out["variant"] = json!(v);
    }
    if !history.is_empty() {
        out["history"] = json!(history);
    }
    out
}

/// The `buildah build` argv (without the secrets, tag and context).
fn build_args(cf: &ContainerfileBuild, file: &Path, runtime: Option<&str>, epoch: u64, platform: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["build".into(), "--quiet".into(), "--pull=never".into(), "--layers=false".into(), "--no-cache".into()];
    if let Some(runtime) = runtime {
        a.extend(["--runtime".into(), runtime.into()]);
    }
    a.extend(["--cap-drop".into(), "all".into(), "--identity-label=false".into(), "--format".into(), "oci".into()]);
    a.extend(["--timestamp".into(), epoch.to_string(), "--platform".into(), platform.into()]);
    if !cf.network {
        a.extend(["--network".into(), "none".into()]);
    }
    a.extend(["--file".into(), file.display().to_string()]);
    if let Some(t) = &cf.target {
        a.extend(["--target".into(), t.clone()]);
    }
    for (k, v) in &cf.build_args {
        a.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    a
}

/// The bases galley copied into buildah's storage for one build, each held by a name of this
/// build's own (derived from its layout's path) while the build runs. The names are removed when
/// it ends, and with the last name the image: another build on the same base holds its own name,
/// so neither removes the image under the other, and an image that was there before is left.
struct Loaded<'a> {
    runner: &'a dyn Runner,
    names: Vec<String>,
}

impl Loaded<'_> {
    /// Make `base` an image of buildah's storage; its id.
    fn load(&mut self, ctx: &Ctx<'_>, work: &Path, base: &Base) -> Result<String, String> {
        let id = base.manifest.config.digest.hex();
        let dir = work.join(format!("base-{}", base.record.digest.short()));
        fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let mut desc = Descriptor::new(config::MEDIA_MANIFEST, base.record.digest, 0);
        desc.size = fs::metadata(ctx.store.blob_path(&base.record.digest)).map_err(|e| e.to_string())?.len();
        desc.annotations = None;
        run::export_layout(ctx.store, &dir, &desc, "image").map_err(|e| e.to_string())?;
        let src = format!("oci:{}:image", dir.display());
        // An image buildah already has is not copied again; it gains this build's name.
        let out = run::check_storage_race(self.runner, &Cmd::new("buildah").args(["pull", "--quiet", src.as_str()]).timeout(run::FROM_TIMEOUT))
            .map_err(|e| e.to_string())?;
        self.names.push(format!("localhost{}:latest", dir.display()));
        let pulled = out.stdout_str().trim().to_owned();
        if pulled != id {
            return Err(format!("buildah stored it as {pulled}, not as its config digest {id}"));
        }
        Ok(id)
    }
}

impl Drop for Loaded<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.runner.run(&Cmd::new("buildah").args(["rmi", name.as_str()]).timeout(run::CLEANUP_TIMEOUT));
        }
    }
}

/// The image buildah built, removed from its storage once galley has its copy.
struct Built<'a> {
    runner: &'a dyn Runner,
    tag: String,
}

impl Drop for Built<'_> {
    fn drop(&mut self) {
        let _ = self.runner.run(&Cmd::new("buildah").args(["rmi", self.tag.as_str()]).timeout(run::CLEANUP_TIMEOUT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cf(network: bool) -> ContainerfileBuild {
        ContainerfileBuild {
            path: "Containerfile".into(),
            context: ".".into(),
            build_args: BTreeMap::from([("V".into(), "1".into())]),
            target: Some("final".into()),
            network,
            secrets: BTreeMap::new(),
        }
    }

    #[test]
    fn builds_never_pull_and_drop_capabilities_and_network() {
        let a = build_args(&cf(false), Path::new("/w/Containerfile"), Some("runc"), 0, "linux/amd64").join(" ");
        for part in ["--pull=never", "--cap-drop all", "--network none", "--runtime runc", "--target final", "--build-arg V=1", "--identity-label=false"] {
            assert!(a.contains(part), "{part} missing from {a}");
        }
        assert!(!a.contains("--volume") && !a.contains("-v "), "{a}");
        let a = build_args(&cf(true), Path::new("/w/Containerfile"), None, 0, "linux/amd64").join(" ");
        assert!(!a.contains("--network"), "{a}");
    }

    #[test]
    fn the_config_keeps_the_files_settings_and_nothing_of_the_build_host() {
        let built = json!({
            "created": "2026-01-01T10:11:12Z",
            "config": { "User": "app", "Env": ["A=1"], "Hostname": "buildhost", "Labels": { "io.buildah.version": "1.28", "x": "y" } },
            "history": [{ "created": "2026-01-01T10:11:12Z", "created_by": "/bin/sh -c make" }],
        });
        let image: Image = serde_json::from_value(json!({
            "base": "scratch", "platform": "linux/amd64", "compression": "gzip", "files": [], "run": [], "users": [], "groups": [],
            "env": {}, "labels": {},
        }))
        .unwrap();
        let cfg = normalized_config(&built, None, &image, &[], 1, 0);
        assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
        assert_eq!(cfg["config"], json!({ "User": "app", "Env": ["A=1"], "Labels": { "x": "y" } }));
        assert_eq!(cfg["history"][0]["created"], "1970-01-01T00:00:00Z");
    }
}

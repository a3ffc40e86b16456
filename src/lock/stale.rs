//! The lock a project asks for, and how it differs from the lock on disk.
//!
//! `desired` recomputes every semantic part (config digests, input content digests, manifests)
//! from the project. Build outputs come from a fresh build when there is one, else they are
//! carried over from the old lock when the image's config, inputs and base are unchanged, else
//! they are unknown (`output: null`), which makes the lock stale until `galley lock` builds.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{LOCK_VERSION, Lock, LockedBase, LockedDebian, LockedImage, LockedOutput, LockedProject, LockedSandbox, inputs, semantic_digest};
use crate::domain::{Digest, Reference};
use crate::manifest::{self, ManifestError};
use crate::model::Project;

/// What a build produced for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub base: Option<LockedBase>,
    /// A Containerfile image's outside images as pinned by the build.
    pub from: Vec<LockedBase>,
    pub output: LockedOutput,
    /// The package closure the build installed.
    pub packages: Option<crate::image::apt::Resolution>,
}

/// The inputs `desired` needs beyond the project.
pub struct Desired<'a> {
    pub project: &'a Project,
    pub project_dir: &'a Path,
    pub lib_root: &'a Path,
    pub old: Option<&'a Lock>,
    /// Base references resolved just now (reference -> digest), overriding the old lock.
    pub bases: &'a BTreeMap<Reference, Digest>,
    /// Fresh build results by image name.
    pub built: &'a BTreeMap<String, Outputs>,
}

#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error("image `{image}` copies `{src}`, which cannot be read: {source}")]
    Input { image: String, src: String, source: std::io::Error },
    #[error("image `{image}`: {message}")]
    Containerfile { image: String, message: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Apt(#[from] crate::image::apt::AptError),
}

pub fn desired(d: &Desired<'_>) -> Result<Lock, StaleError> {
    let project = d.project;
    let mut images = BTreeMap::new();
    for (name, image) in &project.images {
        let mut input_digests = BTreeMap::new();
        for copy in &image.files {
            let digest = inputs::tree_digest(&d.project_dir.join(&copy.src)).map_err(|source| StaleError::Input {
                image: name.clone(),
                src: copy.src.clone(),
                source,
            })?;
            input_digests.insert(copy.src.clone(), digest);
        }
        let old = d.old.and_then(|l| l.images.get(name));
        let base = image.base.image().map(|reference| {
            let reference = reference.clone();
            let locked = old
                .and_then(|o| o.base.as_ref())
                .filter(|b| b.reference == reference && b.platform == image.platform)
                .and_then(|b| b.digest);
            LockedBase {
                digest: d.bases.get(&reference).copied().or(locked),
                reference,
                platform: image.platform.clone(),
            }
        });
        let debian = match &image.debian {
            Some(source) if !image.packages.is_empty() => {
                let (_, keyring) = crate::image::apt::keyring(d.project_dir, name, source)?;
                let mut want = LockedDebian {
                    mirror: source.mirror.clone(),
                    suite: source.suite.clone(),
                    components: source.components.clone(),
                    architecture: source.arch(&image.platform),
                    keyring,
                    requested: image.packages.clone(),
                    release: None,
                    release_date: None,
                    packages: BTreeMap::new(),
                };
                match d.built.get(name).and_then(|b| b.packages.as_ref()) {
                    Some(fresh) => {
                        want.release = Some(fresh.release);
                        want.release_date = fresh.date;
                        want.packages = fresh.packages.clone();
                    }
                    None => {
                        if let Some(o) = old.and_then(|o| o.debian.as_ref()).filter(|o| o.same_request(&want)) {
                            want.release = o.release;
                            want.release_date = o.release_date;
                            want.packages = o.packages.clone();
                        }
                    }
                }
                Some(want)
            }
            _ => None,
        };
        let from = match &image.containerfile {
            Some(cf) => containerfile_inputs(d, name, cf, &image.platform, old, &mut input_digests)?,
            None => Vec::new(),
        };
        let mut locked = LockedImage {
            config: semantic_digest(image),
            inputs: input_digests,
            base,
            debian,
            from,
            compression: image.compression,
            output: None,
        };
        locked.output = match d.built.get(name) {
            Some(fresh) => {
                if fresh.base.is_some() {
                    locked.base = fresh.base.clone();
                }
                if !fresh.from.is_empty() {
                    locked.from = fresh.from.clone();
                }
                Some(fresh.output.clone())
            }
            None => old
                .filter(|o| o.config == locked.config && o.inputs == locked.inputs && o.base == locked.base && o.debian == locked.debian && o.from == locked.from)
                .and_then(|o| o.output.clone()),
        };
        images.insert(name.clone(), locked);
    }

    let mut sandboxes = BTreeMap::new();
    for (name, sandbox) in &project.sandboxes {
        let image_digest = images
            .get(&sandbox.image)
            .and_then(|i: &LockedImage| i.output.as_ref())
            .map(|o| o.manifest);
        let manifest = manifest::resolve(project, name, image_digest, d.lib_root)?;
        sandboxes.insert(
            name.clone(),
            LockedSandbox { config: semantic_digest(sandbox), digest: manifest.digest(), manifest },
        );
    }

    Ok(Lock {
        version: LOCK_VERSION,
        project: LockedProject {
            name: project.name.to_string(),
            config: semantic_digest(&(&project.name, &project.registries)),
        },
        images,
        sandboxes,
    })
}

/// A Containerfile image's inputs (the file, the context, each build argument, by name into
/// `inputs`) and its outside images, pinned as `d.bases` or the old lock has them.
fn containerfile_inputs(
    d: &Desired<'_>,
    name: &str,
    cf: &crate::model::ContainerfileBuild,
    platform: &crate::domain::Platform,
    old: Option<&LockedImage>,
    inputs: &mut BTreeMap<String, Digest>,
) -> Result<Vec<LockedBase>, StaleError> {
    use crate::image::containerfile as cfile;
    let bad = |message: String| StaleError::Containerfile { image: name.to_owned(), message };
    let (text, parsed) = cfile::load(d.project_dir, cf).map_err(|e| bad(e.to_string()))?;
    inputs.insert(cfile::input_name_file(cf), Digest::of(text.as_bytes()));
    inputs.insert(cfile::input_name_context(cf), cfile::context_digest(d.project_dir, cf).map_err(|e| bad(e.to_string()))?);
    for (k, v) in &cf.build_args {
        inputs.insert(cfile::input_name_arg(k), Digest::of(v.as_bytes()));
    }
    Ok(cfile::external_images(&parsed)
        .into_iter()
        .map(|reference| {
            let locked = old
                .into_iter()
                .flat_map(|o| &o.from)
                .find(|b| b.reference == reference && &b.platform == platform)
                .and_then(|b| b.digest);
            LockedBase { digest: d.bases.get(&reference).copied().or(locked), reference, platform: platform.clone() }
        })
        .collect())
}

/// Whether a lock can be used to build and run as it is: every base resolved, every image built.
pub fn complete(lock: &Lock) -> bool {
    lock.images.values().all(|i| {
        i.output.is_some() && i.base.iter().chain(&i.from).all(|b| b.digest.is_some()) && i.debian.as_ref().is_none_or(|d| d.release.is_some())
    })
}

/// The changed fields between two locks, as `path: old -> new` lines, and a unified diff of the
/// texts.
pub fn diff(old: Option<&Lock>, new: &Lock) -> (Vec<String>, String) {
    let old_value = old.map(crate::canonical::to_value).unwrap_or(Value::Null);
    let new_value = crate::canonical::to_value(new);
    let mut changes = Vec::new();
    leaf_changes("", &old_value, &new_value, &mut changes);
    let old_text = old.map(Lock::to_text).unwrap_or_default();
    let new_text = new.to_text();
    let unified = similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header("galley.lock (on disk)", "galley.lock (from galley.ncl)")
        .to_string();
    (changes, unified)
}

fn leaf_changes(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                leaf_changes(&sub, a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                leaf_changes(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ => match package_bump(path, old, new) {
            Some(line) => out.push(line),
            None => out.push(format!("{path}: {} -> {}", short(old), short(new))),
        },
    }
}

/// A pinned package's change as a changelog line: `images.py: package python3.11-minimal
/// 3.11.2-6 -> 3.11.2-6+deb12u1` (`(none)` when added or removed).
fn package_bump(path: &str, old: &Value, new: &Value) -> Option<String> {
    let (image, package) = path.strip_prefix("images.")?.split_once(".debian.packages.")?;
    let version = |v: &Value| v.as_str().and_then(|s| s.split(' ').next()).unwrap_or("(none)").to_owned();
    Some(format!("images.{image}: package {package} {} -> {}", version(old), version(new)))
}

fn short(v: &Value) -> String {
    if let Some(d) = v.as_str().and_then(|d| Digest::parse(d).ok()) {
        return format!("{}:{}...", d.algorithm().name(), d.short());
    }
    let s = v.to_string();
    if s.len() <= 60 {
        return s;
    }
    let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}...", &s[..cut])
}

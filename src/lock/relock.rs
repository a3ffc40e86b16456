//! Producing a lock: resolve base tags (only when the lock lacks them or on `--update`), build
//! every image through the input-addressed cache, and record inputs, outputs and manifests.

use std::collections::BTreeMap;

use super::{Desired, Lock, LockedBase, LockedLayer, LockedOutput, Outputs, StaleError, desired};
use crate::model::Project;
use crate::settings::Env;

#[derive(Debug, thiserror::Error)]
pub enum RelockError {
    #[error(transparent)]
    Stale(#[from] StaleError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

impl RelockError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            RelockError::Stale(e) => e.help(),
            RelockError::Image(e) => e.help(),
        }
    }
}

impl StaleError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            StaleError::Input { .. } => Some("check the `files` entries of the image: every `src` must exist in the project"),
            StaleError::Containerfile { .. } => Some("fix the Containerfile at the line named, or `containerfile.path` and `context` of the image"),
            StaleError::Manifest(_) => None,
            StaleError::Apt(e) => e.help(),
        }
    }
}

/// The lock the project asks for, using only what is on disk: no network, no runtime, no build.
pub fn desired_offline(settings: &Env, project: &Project, old: Option<&Lock>) -> Result<Lock, StaleError> {
    desired(&Desired {
        project,
        project_dir: &settings.project_dir,
        lib_root: &settings.lib_root(),
        old,
        bases: &BTreeMap::new(),
        built: &BTreeMap::new(),
    })
}

/// Resolve, build and lock. `update`: `None` keeps pinned bases and package closures,
/// `Some([])` re-resolves every base and closure, `Some(names)` those of the images named.
pub fn relock(
    settings: &Env,
    project: &Project,
    old: Option<&Lock>,
    update: Option<&[String]>,
    offline: bool,
) -> Result<Lock, RelockError> {
    let mut pinned = old.map(Lock::pinned_bases).unwrap_or_default();
    let mut bases = BTreeMap::new();
    for (name, image) in &project.images {
        let references: Vec<crate::domain::Reference> = match &image.containerfile {
            Some(cf) => {
                let (_, parsed) = crate::image::containerfile::load(&settings.project_dir, cf)
                    .map_err(|e| StaleError::Containerfile { image: name.clone(), message: e.to_string() })?;
                crate::image::containerfile::external_images(&parsed)
            }
            None => image.base.image().cloned().into_iter().collect(),
        };
        let forced = match update {
            None => false,
            Some([]) => true,
            Some(names) => names.iter().any(|n| n == name),
        };
        for base in references {
            let locked = old
                .and_then(|l| l.images.get(name))
                .into_iter()
                .flat_map(|i| i.base.iter().chain(&i.from))
                .find(|b| b.reference == base && b.platform == image.platform && b.digest.is_some());
            if forced || locked.is_none() {
                pinned.remove(&base);
                let digest = crate::image::resolve_base(settings, project, &base)?;
                bases.insert(base.clone(), digest);
                pinned.insert(base, digest);
            }
        }
    }
    // A closure is reused when the lock resolved the same request and the image is not named
    // by `--update`.
    let desired_now = desired_offline(settings, project, old)?;
    let pinned_packages = desired_now
        .pinned_packages()
        .into_iter()
        .filter(|(name, _)| match update {
            None => true,
            Some([]) => false,
            Some(names) => !names.iter().any(|n| n == name),
        })
        .collect();
    // A rollback is an older Release from the same mirror and suite; another source (an older
    // snapshot chosen on purpose) starts afresh.
    let same_source = |name: &String| {
        let (Some(image), Some(locked)) = (project.images.get(name), old.and_then(|l| l.images.get(name)).and_then(|i| i.debian.as_ref())) else {
            return false;
        };
        image.debian.as_ref().is_some_and(|d| d.mirror == locked.mirror && d.suite == locked.suite)
    };
    let release_not_before = old.map(Lock::release_dates).unwrap_or_default().into_iter().filter(|(n, _)| same_source(n)).collect();
    let opts = crate::image::BuildOptions { offline, pinned_bases: pinned, pinned_packages, release_not_before, ..Default::default() };
    let images = crate::image::build(settings, project, &[], &opts)?;
    let built: BTreeMap<String, Outputs> = images
        .into_iter()
        .map(|(name, b)| {
            let locked = |r: crate::image::BaseRecord| LockedBase { reference: r.reference, platform: r.platform, digest: Some(r.digest) };
            let base = b.base.map(locked);
            let from = b.bases.into_iter().map(locked).collect();
            let output = LockedOutput {
                layers: b.layers.into_iter().map(|l| LockedLayer { input: l.input_key, digest: l.digest }).collect(),
                config: b.config_digest,
                manifest: b.manifest_digest,
            };
            (name, Outputs { base, from, output, packages: b.packages })
        })
        .collect();
    Ok(desired(&Desired {
        project,
        project_dir: &settings.project_dir,
        lib_root: &settings.lib_root(),
        old,
        bases: &bases,
        built: &built,
    })?)
}

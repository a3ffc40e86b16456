//! Images for apply, from galley's own store: each image is built through the input-addressed
//! cache (a no-op when nothing changed), checked against the digest the lock promises, and
//! handed to podman by its id, the digest of its config: podman runs exactly that image or finds
//! none, so nothing asks podman first. Only when podman has none is it loaded (and tagged).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{ImageSource, Result, RuntimeError};
use crate::exec::System;
use crate::domain::{Digest, Reference};
use crate::image::{self, BuildOptions, Store};
use crate::manifest::SandboxManifest;
use crate::model::Project;
use crate::settings::Env;

pub struct StoreImages<'a> {
    pub settings: &'a Env,
    pub project: &'a Project,
    /// Base digests pinned by the lock.
    pub pinned_bases: BTreeMap<Reference, Digest>,
    /// Package closures pinned by the lock, by image name.
    pub pinned_packages: BTreeMap<String, image::apt::Resolution>,
    /// Images already built and checked, by image name.
    built: Mutex<BTreeMap<String, image::BuiltImage>>,
}

impl<'a> StoreImages<'a> {
    pub fn new(settings: &'a Env, project: &'a Project, pinned_bases: BTreeMap<Reference, Digest>) -> Self {
        StoreImages { settings, project, pinned_bases, pinned_packages: BTreeMap::new(), built: Mutex::new(BTreeMap::new()) }
    }

    /// Install the package closures the lock pins instead of resolving them.
    pub fn with_packages(mut self, pinned: BTreeMap<String, image::apt::Resolution>) -> Self {
        self.pinned_packages = pinned;
        self
    }

    /// The image of `m`, built (a cache hit when nothing changed) and checked against the lock.
    fn built(&self, m: &SandboxManifest) -> Result<image::BuiltImage> {
        let mut cache = self.built.lock().expect("image cache lock");
        if let Some(built) = cache.get(&m.image.name) {
            return Ok(built.clone());
        }
        let fail = |message: String| RuntimeError::Image { sandbox: m.sandbox.clone(), message };
        let name = &m.image.name;
        let opts = BuildOptions {
            offline: false,
            pinned_bases: self.pinned_bases.clone(),
            pinned_packages: self.pinned_packages.clone(),
            ..BuildOptions::default()
        };
        let mut built = image::build(self.settings, self.project, std::slice::from_ref(name), &opts)
            .map_err(|e| fail(format!("cannot build image {name}: {e}")))?;
        let built = built.remove(name).ok_or_else(|| fail(format!("image {name} was not built")))?;
        if let Some(locked) = &m.image.digest
            && *locked != built.manifest_digest
        {
            return Err(fail(format!(
                "image {name} built as {}, but galley.lock promises {locked} (run `galley build --locked` to see which layer differs)",
                built.manifest_digest
            )));
        }
        cache.insert(name.clone(), built.clone());
        Ok(built)
    }
}

impl ImageSource for StoreImages<'_> {
    fn podman_ref(&self, m: &SandboxManifest) -> Result<String> {
        Ok(self.built(m)?.config_digest.hex())
    }

    fn load(&self, m: &SandboxManifest) -> Result<String> {
        let built = self.built(m)?;
        let fail = |message: String| RuntimeError::Image { sandbox: m.sandbox.clone(), message };
        let store = Store::open(&self.settings.home).map_err(|e| fail(e.to_string()))?;
        let tag = image::podman::tag(&self.project.name, &m.image.name, &built.manifest_digest);
        image::podman::load(&System, &store, &built, &tag).map_err(fail)?;
        Ok(built.config_digest.hex())
    }
}

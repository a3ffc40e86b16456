//! Images for apply, from galley's own store: each image is built through the input-addressed
//! cache (a no-op when nothing changed), checked against the digest the lock promises, and
//! loaded into podman by digest (nothing is copied when podman already has it).

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
    /// Podman references already prepared, by image name.
    loaded: Mutex<BTreeMap<String, String>>,
}

impl<'a> StoreImages<'a> {
    pub fn new(settings: &'a Env, project: &'a Project, pinned_bases: BTreeMap<Reference, Digest>) -> Self {
        StoreImages { settings, project, pinned_bases, pinned_packages: BTreeMap::new(), loaded: Mutex::new(BTreeMap::new()) }
    }

    /// Install the package closures the lock pins instead of resolving them.
    pub fn with_packages(mut self, pinned: BTreeMap<String, image::apt::Resolution>) -> Self {
        self.pinned_packages = pinned;
        self
    }

    fn prepare(&self, m: &SandboxManifest) -> std::result::Result<String, String> {
        let name = &m.image.name;
        let opts = BuildOptions {
            offline: false,
            pinned_bases: self.pinned_bases.clone(),
            pinned_packages: self.pinned_packages.clone(),
            ..BuildOptions::default()
        };
        let mut built = image::build(self.settings, self.project, std::slice::from_ref(name), &opts)
            .map_err(|e| format!("cannot build image {name}: {e}"))?;
        let built = built.remove(name).ok_or_else(|| format!("image {name} was not built"))?;
        if let Some(locked) = &m.image.digest
            && *locked != built.manifest_digest
        {
            return Err(format!(
                "image {name} built as {}, but galley.lock promises {locked} (run `galley build --locked` to see which layer differs)",
                built.manifest_digest
            ));
        }
        let store = Store::open(&self.settings.home).map_err(|e| e.to_string())?;
        let tag = image::podman::tag(&self.project.name, name, &built.manifest_digest);
        image::podman::load(&System, &store, &built, &tag)?;
        Ok(tag)
    }
}

impl ImageSource for StoreImages<'_> {
    fn podman_ref(&self, m: &SandboxManifest) -> Result<String> {
        let mut loaded = self.loaded.lock().expect("image cache lock");
        if let Some(tag) = loaded.get(&m.image.name) {
            return Ok(tag.clone());
        }
        let tag = self.prepare(m).map_err(|message| RuntimeError::Image { sandbox: m.sandbox.clone(), message })?;
        loaded.insert(m.image.name.clone(), tag.clone());
        Ok(tag)
    }
}

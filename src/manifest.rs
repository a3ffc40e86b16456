//! The runtime manifest of a sandbox: every setting the runner enforces and the auditor checks,
//! fully resolved (defaults applied, collections sorted, seccomp profile reduced to a digest).
//!
//! The lock records one per sandbox with its digest; the runner labels each container with that
//! digest (`io.galley.manifest`), so a changed manifest means a replaced container. Secret
//! values never appear here: only names and where the value comes from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::{Digest, PortBinding, SeccompChoice, UserSpec};
use crate::model::{Network, Project, Resources, Secret, Tmpfs, Volume};
use crate::seccomp::{self, SeccompError};

/// Current format of [`SandboxManifest`]; part of its digest.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxManifest {
    pub version: u32,
    pub project: String,
    pub sandbox: String,
    pub image: ImageRef,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PortBinding>,
    pub network: Network,
    pub secrets: BTreeMap<String, Secret>,
    pub seccomp: SeccompRef,
    pub capabilities: Vec<String>,
    pub user: UserSpec,
    pub read_only: bool,
    pub no_new_privileges: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub volumes: Vec<Volume>,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// Name of the image in the project.
    pub name: String,
    /// Manifest digest of the built image, once known (the lock fills it in).
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompRef {
    /// `default`, `strict`, `custom` or `unconfined`.
    pub profile: String,
    /// Digest of the canonical profile JSON; `None` when unconfined.
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("no sandbox named `{0}` in the project")]
    NoSandbox(String),
    #[error("sandbox `{sandbox}`: {source}")]
    Seccomp { sandbox: String, source: SeccompError },
}

impl SandboxManifest {
    /// The digest of the canonical JSON.
    pub fn digest(&self) -> Digest {
        Digest::of(&crate::canonical::to_vec(self))
    }
}

/// Resolve the manifest of sandbox `name`; `image_digest` is the built image's manifest digest
/// when known.
pub fn resolve(
    project: &Project,
    name: &str,
    image_digest: Option<Digest>,
    lib_root: &Path,
) -> Result<SandboxManifest, ManifestError> {
    let sandbox = project.sandboxes.get(name).ok_or_else(|| ManifestError::NoSandbox(name.to_owned()))?;
    let profile = seccomp::resolve(lib_root, &sandbox.seccomp)
        .map_err(|source| ManifestError::Seccomp { sandbox: name.to_owned(), source })?;
    let seccomp = match profile {
        None => SeccompRef { profile: SeccompChoice::UNCONFINED.into(), digest: None },
        Some(p) => SeccompRef { profile: p.name, digest: Some(p.digest) },
    };
    let mut ports = sandbox.ports.clone();
    ports.sort();
    let mut capabilities = sandbox.capabilities.clone();
    capabilities.sort();
    capabilities.dedup();
    let mut tmpfs = sandbox.tmpfs.clone();
    tmpfs.sort();
    let mut volumes = sandbox.volumes.clone();
    volumes.sort();
    Ok(SandboxManifest {
        version: MANIFEST_VERSION,
        project: project.name.to_string(),
        sandbox: name.to_owned(),
        image: ImageRef { name: sandbox.image.clone(), digest: image_digest },
        command: sandbox.command.clone(),
        env: sandbox.env.clone(),
        ports,
        network: sandbox.network,
        secrets: sandbox.secrets.clone(),
        seccomp,
        capabilities,
        user: sandbox.user.clone(),
        read_only: sandbox.read_only,
        no_new_privileges: true,
        tmpfs,
        volumes,
        resources: sandbox.resources.clone(),
    })
}

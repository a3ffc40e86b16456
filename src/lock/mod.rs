//! `galley.lock`: every input pinned and every sandbox's runtime manifest, in a canonical,
//! review-able and merge-friendly text form.
//!
//! The lock is JSON with sorted keys, two-space indentation, LF line endings, a trailing newline,
//! and a blank line between the entries of `images` and of `sandboxes`, so that two branches
//! changing different sandboxes touch lines git can merge without conflict. For the same reason
//! there is no whole-config digest: each entry carries the semantic digest of its own config.

mod format;
pub mod inputs;
mod relock;
mod verify;
mod stale;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::debian::Pinned;
use crate::domain::{ArchiveUrl, Digest, PackageName, Platform, Reference};
use crate::manifest::SandboxManifest;
use crate::model::Compression;

pub use relock::{RelockError, desired_offline, relock};
pub use verify::{compare, staleness};
pub use stale::{Desired, Outputs, StaleError, complete, desired, diff};
pub use verify::Mismatch;

/// The lock format this galley reads and writes.
pub const LOCK_VERSION: u32 = 1;

pub use crate::lang::LOCK_FILE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub project: LockedProject,
    pub images: BTreeMap<String, LockedImage>,
    pub sandboxes: BTreeMap<String, LockedSandbox>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedProject {
    pub name: String,
    /// Semantic digest of the project-level settings (name, registries).
    pub config: Digest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// Semantic digest of the image's config (every field, defaults filled in).
    pub config: Digest,
    /// Content digest of each project path copied into the image, by path.
    pub inputs: BTreeMap<String, Digest>,
    pub base: Option<LockedBase>,
    /// The image's Debian packages: the source and request they were resolved from, and the
    /// closure pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<LockedDebian>,
    /// A Containerfile image's outside images (every stage's `FROM`, `--from=`), each pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<LockedBase>,
    pub compression: Compression,
    /// What the build produced; `None` until the image has been built for this lock.
    pub output: Option<LockedOutput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBase {
    pub reference: Reference,
    pub platform: Platform,
    /// The manifest digest the reference resolved to for `platform`; `None` until a
    /// `galley lock` resolves it (written `"unresolved"`).
    #[serde(with = "unresolved")]
    pub digest: Option<Digest>,
}

/// A base digest nobody has resolved yet is written `"unresolved"` in the lock.
mod unresolved {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::Digest;

    const UNRESOLVED: &str = "unresolved";

    pub fn serialize<S: Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_str(UNRESOLVED),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
        let text = String::deserialize(d)?;
        if text == UNRESOLVED {
            return Ok(None);
        }
        Digest::parse(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

/// An image's Debian packages, pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDebian {
    pub mirror: ArchiveUrl,
    pub suite: String,
    pub components: Vec<String>,
    pub architecture: String,
    /// SHA-256 of the keyring file the Release was checked with.
    pub keyring: Digest,
    /// The `packages` list as written.
    pub requested: Vec<PackageName>,
    /// SHA-256 of the signed Release text the closure was resolved from; `None` (written
    /// `"unresolved"`) until `galley lock` resolves the request.
    #[serde(with = "unresolved")]
    pub release: Option<Digest>,
    /// The Release's `Date` (seconds since the epoch): a later resolution refuses an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<i64>,
    /// Every package of the closure: `version arch size sha256 pool-path`, one line each.
    pub packages: BTreeMap<String, Pinned>,
}

impl LockedDebian {
    /// Whether `other` asks for the same packages from the same source (what was resolved can
    /// be reused).
    pub fn same_request(&self, other: &LockedDebian) -> bool {
        (&self.mirror, &self.suite, &self.components, &self.architecture, &self.keyring, &self.requested)
            == (&other.mirror, &other.suite, &other.components, &other.architecture, &other.keyring, &other.requested)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedOutput {
    pub layers: Vec<LockedLayer>,
    /// Digest of the image config blob.
    pub config: Digest,
    /// Digest of the image manifest: the image's identity.
    pub manifest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedLayer {
    /// Hash of the layer's inputs (parent, step, input content): the cache key.
    pub input: Digest,
    /// Digest of the compressed layer blob.
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSandbox {
    /// Semantic digest of the sandbox's config.
    pub config: Digest,
    /// Digest of `manifest`, the label a running container carries.
    pub digest: Digest,
    pub manifest: SandboxManifest,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a galley lock: {message}")]
    Parse { path: String, message: String },
    #[error("{path} has lock version {found}, this galley reads version {LOCK_VERSION}")]
    Version { path: String, found: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

impl LockError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            LockError::Version { .. } => Some("use the galley version that wrote the lock, or regenerate it with `galley lock`"),
            LockError::Parse { .. } => Some("regenerate it with `galley lock` (resolve merge conflicts by re-locking)"),
            _ => None,
        }
    }
}

impl Lock {
    /// Read the lock at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        let shown = path.display().to_string();
        let text = match fs_err::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LockError::Read { path: shown, source }),
        };
        Lock::parse(&text, &shown).map(Some)
    }

    pub fn parse(text: &str, shown: &str) -> Result<Lock, LockError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| LockError::Parse { path: shown.to_owned(), message: e.to_string() })?;
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(LOCK_VERSION)) => {}
            Some(v) => return Err(LockError::Version { path: shown.to_owned(), found: v.to_string() }),
            None => return Err(LockError::Version { path: shown.to_owned(), found: "(none)".into() }),
        }
        serde_json::from_value(value).map_err(|e| LockError::Parse { path: shown.to_owned(), message: e.to_string() })
    }

    /// The canonical text of the lock.
    pub fn to_text(&self) -> String {
        format::to_text(self)
    }

    /// Write the lock atomically.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        crate::fsutil::write_atomic(path, self.to_text().as_bytes())
            .map_err(|source| LockError::Write { path: path.display().to_string(), source })
    }

    /// Every image's resolved package closure, by image name.
    pub fn pinned_packages(&self) -> BTreeMap<String, crate::image::apt::Resolution> {
        self.images
            .iter()
            .filter_map(|(name, i)| {
                let d = i.debian.as_ref()?;
                Some((name.clone(), crate::image::apt::Resolution { release: d.release?, date: d.release_date, packages: d.packages.clone() }))
            })
            .collect()
    }

    /// The Release date each image's closure was resolved from, by image name.
    pub fn release_dates(&self) -> BTreeMap<String, i64> {
        self.images.iter().filter_map(|(name, i)| Some((name.clone(), i.debian.as_ref()?.release_date?))).collect()
    }

    /// Every base reference pinned (resolved) in the lock, with its digest.
    pub fn pinned_bases(&self) -> BTreeMap<Reference, Digest> {
        self.images
            .values()
            .flat_map(|i| i.base.iter().chain(&i.from))
            .filter_map(|b| Some((b.reference.clone(), b.digest?)))
            .collect()
    }
}

/// The digest of a value's canonical JSON.
pub fn semantic_digest<T: Serialize + ?Sized>(value: &T) -> Digest {
    Digest::of(&crate::canonical::to_vec(value))
}

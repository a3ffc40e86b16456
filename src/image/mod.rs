//! Reproducible OCI images: galley's own layer writer, an OCI-layout store under
//! `$GALLEY_HOME/store`, an input-addressed layer cache, verified base pulls behind an SSRF guard,
//! and RUN steps in rootless buildah whose output galley re-packs itself.
//!
//! An image is the base's layers (if any) followed by galley's layers, in this order:
//! 1. one layer per Debian package of `packages` and their dependency closure, by name;
//! 2. accounts (`users`/`groups`): /etc/passwd, /etc/group, /etc/shadow merged over the base's;
//! 3. files: every `files` copy, one layer;
//! 4. one layer per `run` step.
//!
//! A Containerfile image (see [`containerfile`]) is instead its target stage's base's layers
//! followed by the layers buildah added, re-packed.
//!
//! Every layer has an input key (see [`cache`]); a layer whose key is known is reused as is.

pub mod accounts;
pub mod apt;
mod build;
pub mod cache;
pub mod config;
pub mod containerfile;
mod deb;
pub mod gc;
pub mod guard;
pub mod home;
mod inputs;
pub mod layer;
pub mod podman;
pub mod pull;
pub mod repro;
pub mod run;
pub mod screen;
mod stack;
pub mod store;
mod walk;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::{Digest, Platform, Reference};
use crate::model::{Compression, Project};
use cache::CachedLayer;
pub use build::{Base, build, build_with, resolve_base};
pub use stack::read_from_layers;
pub use store::{Store, StoreError};
pub use walk::walk_files;
pub(crate) use walk::walk_under;

/// How `build` may reach the outside.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Never touch the network: bases must already be in the store.
    pub offline: bool,
    /// Base reference (as written in the image) -> manifest digest to use instead of resolving
    /// the tag.
    pub pinned_bases: BTreeMap<Reference, Digest>,
    /// Print the timing of each phase on stderr (`-vvv`).
    pub timings: bool,
    /// Image name -> the pinned closure of its `packages` (from the lock), used instead of
    /// resolving against the archive.
    pub pinned_packages: BTreeMap<String, apt::Resolution>,
    /// Image name -> the `Date` of the Release its locked closure came from: resolving again
    /// refuses an older Release (a rollback).
    pub release_not_before: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    /// As written in the image's `base`.
    pub reference: Reference,
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
    /// Every image a Containerfile build names (each stage's `FROM`, `--from=`), pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseRecord>,
    /// galley's own layers, after the base's.
    pub layers: Vec<LayerRecord>,
    pub compression: Compression,
    /// The ref name in the store's index.json (`<project>/<image>`).
    pub ref_name: String,
    /// The closure of the image's `packages` that was installed.
    #[serde(skip)]
    pub packages: Option<apt::Resolution>,
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
    #[error("base `{base}`: layer {layer}: entry `{entry}` {why}; it was refused before any RUN step\nhelp: use a base whose layers keep every entry inside the image root")]
    HostileBase { base: String, layer: Digest, entry: String, why: String },
    #[error(transparent)]
    Apt(#[from] apt::AptError),
    #[error(transparent)]
    Deb(#[from] deb::DebError),
    #[error("no image named `{0}` in this project")]
    Unknown(String),
    #[error("{0}")]
    Other(String),
}

impl ImageError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            ImageError::Apt(e) => e.help(),
            _ => None,
        }
    }
}

/// The ref name of an image in the store.
pub fn ref_name(project: &Project, image: &str) -> String {
    format!("{}/{}", project.name, image)
}

/// A progress event, for the CLI.
#[derive(Debug)]
pub enum Progress<'a> {
    Image(&'a str),
    Layer { image: &'a str, step: &'a str, cached: bool },
    Pull(&'a str),
}

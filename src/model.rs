//! The typed project model: what `galley.ncl` means once the schema contract has filled in every
//! default. Every later stage (image build, lock, runner, audit, export) consumes these types and
//! never the Nickel value itself.
//!
//! Collections that are keyed by name are `BTreeMap`s so that iteration and serialization order
//! never depends on the order fields were written in the source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{ArchiveUrl, Base, Cpus, Memory, MountPath, Name, PackageName, Platform, PortBinding, SeccompChoice, Size, UserSpec};

/// A whole project, as `galley show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: Name,
    #[serde(default)]
    pub registries: BTreeMap<String, Registry>,
    #[serde(default)]
    pub images: BTreeMap<String, Image>,
    #[serde(default)]
    pub sandboxes: BTreeMap<String, Sandbox>,
}

/// Settings for one registry host (`host` or `host:port`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Permit connections to private, loopback and link-local addresses for this host.
    pub allow_private: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// `scratch` or a fully qualified image reference (`host/repo:tag` or `host/repo@sha256:...`).
    pub base: Base,
    pub platform: Platform,
    pub compression: Compression,
    /// The Debian archive `packages` come from; `None` when the image installs none. Left out
    /// of the serialized image when unset, so images without packages keep their config digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<DebianSource>,
    /// Debian packages installed (with their dependency closure) before `files` and `run`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageName>,
    pub files: Vec<FileCopy>,
    pub run: Vec<RunStep>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<UserSpec>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    /// Build from a Containerfile instead of `base`/`debian`/`packages`/`files`/`run`/`users`/`groups` (the lints
    /// refuse an image that sets both). Left out of the serialized form when absent, so native
    /// images keep their semantic digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerfile: Option<ContainerfileBuild>,
}

impl Image {
    /// Where the image's root file system comes from.
    pub fn source(&self) -> Source<'_> {
        match &self.containerfile {
            Some(c) => Source::Containerfile(c),
            None => Source::Native,
        }
    }
}

/// Where an image's root file system comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source<'a> {
    /// `base` + `users`/`groups` + `files` + `run`, built by galley.
    Native,
    /// A Containerfile built by buildah, its output re-packed by galley.
    Containerfile(&'a ContainerfileBuild),
}

/// A Containerfile build (`images.NAME.containerfile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerfileBuild {
    /// Path of the Containerfile, relative to the project directory.
    pub path: String,
    /// The build context, relative to the project directory.
    pub context: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (`FROM ... AS name`); the last stage when absent.
    pub target: Option<String>,
    /// Whether the build's steps may reach the network.
    pub network: bool,
    /// Build secrets by id (`RUN --mount=type=secret,id=ID`), from galley's secret sources.
    pub secrets: BTreeMap<String, Secret>,
}

/// A signed Debian archive: where it is, which part of it, and the key its Release is signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianSource {
    /// The archive root (a mirror or a snapshot).
    pub mirror: ArchiveUrl,
    /// The suite or codename under `dists/` (`bookworm`).
    pub suite: String,
    /// Components searched, in order (`["main"]`).
    pub components: Vec<String>,
    /// Debian architecture; `None` takes the image platform's.
    pub architecture: Option<String>,
    /// Project path of the OpenPGP keyring (binary or armored) the Release must be signed by.
    pub keyring: String,
    /// Refuse a Release whose `Valid-Until` has passed.
    #[serde(default = "yes")]
    pub check_valid_until: bool,
}

fn yes() -> bool {
    true
}

impl DebianSource {
    /// The Debian architecture packages are installed for, given the image's platform.
    pub fn arch(&self, platform: &Platform) -> String {
        self.architecture.clone().unwrap_or_else(|| match (platform.architecture(), platform.variant()) {
            ("arm", Some("v7")) => "armhf".into(),
            ("arm", _) => "armel".into(),
            ("386", _) => "i386".into(),
            ("ppc64le", _) => "ppc64el".into(),
            (other, _) => other.into(),
        })
    }
}

/// Copy a project path (file or directory) into the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCopy {
    /// Path relative to the project directory.
    pub src: String,
    /// Absolute path inside the image.
    pub dst: String,
    pub uid: u32,
    pub gid: u32,
    /// Octal permission bits as written in config (`"0644"`); `None` keeps the source's mode.
    pub mode: Option<String>,
}

impl FileCopy {
    /// The declared mode as permission bits, if any.
    pub fn mode_bits(&self) -> Option<u32> {
        self.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok())
    }
}

/// One build step run in an unprivileged buildah container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStep {
    /// argv of the step; a string in config becomes `["/bin/sh", "-c", string]`.
    pub command: Vec<String>,
    /// Whether the step may reach the network.
    pub network: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    Untrusted,
    Trusted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sandbox {
    /// Name of an image of this project.
    pub image: String,
    pub trust: Trust,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PortBinding>,
    pub network: Network,
    pub secrets: BTreeMap<String, Secret>,
    pub seccomp: SeccompChoice,
    pub capabilities: Vec<String>,
    pub user: UserSpec,
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub volumes: Vec<Volume>,
    pub resources: Resources,
}

/// How a sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network interface but loopback.
    None,
    /// A per-instance network with no route out (`--internal`).
    Isolated,
    /// A per-instance network with egress to the outside.
    Egress,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Isolated => "isolated",
            Network::Egress => "egress",
        }
    }
}

/// Where a secret's value comes from. Never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Secret {
    /// A host environment variable.
    Env(String),
    /// A host file, relative to the project directory or absolute (`~` expands to `$HOME`).
    File(String),
    /// A host command whose standard output (trailing newline trimmed) is the value.
    Command(Vec<String>),
    /// A key in galley's encrypted project store.
    Store(String),
}

impl Secret {
    /// The kind of source, as recorded in the lock.
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Env(_) => "env",
            Secret::File(_) => "file",
            Secret::Command(_) => "command",
            Secret::Store(_) => "store",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    pub path: MountPath,
    /// Size with a unit (`64m`), never 0 (the kernel's "no limit").
    #[serde(deserialize_with = "Size::deserialize_tmpfs")]
    pub size: Size,
    /// Octal mode of the mount point.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Named volume (scoped to the instance by the runner); never a host path.
    #[serde(deserialize_with = "Name::deserialize_volume")]
    pub name: Name,
    /// Absolute mount point inside the sandbox.
    pub path: MountPath,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit with a unit (`512m`, `1g`) or unlimited.
    pub memory: Memory,
    /// CPU quota in cores, or unlimited (written `0`).
    pub cpus: Cpus,
    /// Maximum number of processes; 0 means unlimited.
    pub pids: u32,
    /// RLIMIT_NOFILE (soft = hard).
    pub nofile: Option<u64>,
    /// RLIMIT_NPROC (soft = hard).
    pub nproc: Option<u64>,
}

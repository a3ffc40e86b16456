//! The typed project model: what `galley.ncl` means once the schema contract has filled in every
//! default. Every later stage (image build, lock, runner, audit, export) consumes these types and
//! never the Nickel value itself.
//!
//! Collections that are keyed by name are `BTreeMap`s so that iteration and serialization order
//! never depends on the order fields were written in the source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Base, Platform};

/// A whole project, as `galley show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: String,
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
    pub files: Vec<FileCopy>,
    pub run: Vec<RunStep>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
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
    pub ports: Vec<Port>,
    pub network: Network,
    pub secrets: BTreeMap<String, Secret>,
    pub seccomp: Seccomp,
    pub capabilities: Vec<String>,
    pub user: String,
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub volumes: Vec<Volume>,
    pub resources: Resources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub container: u16,
    pub host: u16,
    /// Host address the port is published on.
    pub address: String,
    pub protocol: Protocol,
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

/// A seccomp choice: a profile of the standard library by name, `unconfined`, or a custom
/// profile in the OCI/podman JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seccomp {
    Named(String),
    Custom(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    pub path: String,
    /// Size with a unit (`64m`).
    pub size: String,
    /// Octal mode of the mount point.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Named volume (scoped to the instance by the runner).
    pub name: String,
    /// Absolute mount point inside the sandbox.
    pub path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit with a unit (`512m`, `1g`) or `unlimited`.
    pub memory: String,
    /// CPU quota in cores; 0 means unlimited.
    pub cpus: f64,
    /// Maximum number of processes; 0 means unlimited.
    pub pids: u32,
    /// RLIMIT_NOFILE (soft = hard).
    pub nofile: Option<u64>,
    /// RLIMIT_NPROC (soft = hard).
    pub nproc: Option<u64>,
}

/// Parse a size such as `512m`, `1g`, `64k`, `1024` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1u64),
        Some((i, _)) => {
            let mult = match s[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            (&s[..i], mult)
        }
    };
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("m"), None);
    }
}

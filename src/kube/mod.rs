//! `galley export kube`: a project's sandboxes as Kubernetes objects with the same isolation.
//!
//! One instance becomes one Namespace, labelled for Pod Security Admission ("restricted"). Each
//! sandbox becomes a Deployment whose pod meets the restricted profile, a ClusterIP Service when
//! it declares ports, and NetworkPolicies on top of a namespace-wide default deny. Secrets are
//! references to Kubernetes Secrets the user creates; their values never reach the output.
//!
//! The input is [`desired`]: the resolved runtime manifest of every sandbox. Until the lockfile
//! supplies image digests, images are referenced by tag and the export is reported as unpinned.

pub mod objects;
pub mod policy;
pub mod write;

use std::collections::BTreeMap;

use crate::domain::Digest;
use crate::manifest::{self, ManifestError, SandboxManifest};
use crate::model::Project;
use crate::seccomp::{self, Profile, SeccompError};
use crate::settings::Env;

/// Where images are looked up when `--image-prefix` is not given.
pub const DEFAULT_IMAGE_PREFIX: &str = "localhost/galley";
/// Pod Security Standards version the namespace is pinned to.
pub const PSS_VERSION: &str = "v1.30";

/// How the default seccomp profile is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeccompMode {
    /// Every profile as a Localhost profile installed on the nodes.
    #[default]
    Localhost,
    /// `default` as the container runtime's default profile; others stay Localhost.
    RuntimeDefault,
}

/// Choices of the export beyond the manifests.
#[derive(Debug, Clone)]
pub struct Options {
    /// `REGISTRY/PATH` images were pushed under.
    pub image_prefix: String,
    pub seccomp: SeccompMode,
    /// Permit capabilities of the baseline profile; the namespace then enforces baseline.
    pub allow_baseline: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { image_prefix: DEFAULT_IMAGE_PREFIX.into(), seccomp: SeccompMode::default(), allow_baseline: false }
    }
}

/// What one instance should run: each sandbox's manifest and its seccomp profile.
#[derive(Debug, Clone)]
pub struct Desired {
    pub project: String,
    pub instance: String,
    pub sandboxes: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: SandboxManifest,
    /// The profile the manifest's seccomp digest names; `None` when unconfined.
    pub profile: Option<Profile>,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("sandbox `{sandbox}`: {source}")]
    Seccomp { sandbox: String, source: SeccompError },
    #[error("invalid instance name `{0}`")]
    Instance(String),
    #[error("`{name}` cannot be used as a kubernetes name ({what})")]
    Name { name: String, what: &'static str },
    #[error("sandbox `{sandbox}` runs as `{user}`, which cannot be proven non-root")]
    NamedUser { sandbox: String, user: String },
    #[error("sandbox `{sandbox}` runs as root")]
    RootUser { sandbox: String },
    #[error("sandbox `{sandbox}` adds capability {capability}, which the restricted pod security profile forbids")]
    Capability { sandbox: String, capability: String, baseline: bool },
    #[error("sandbox `{sandbox}` has seccomp unconfined, which pod security admission forbids")]
    Unconfined { sandbox: String },
    #[error("sandbox `{sandbox}`: secrets `{first}` and `{second}` both map to kubernetes secret `{name}`")]
    SecretClash { sandbox: String, first: String, second: String, name: String },
    #[error("volumes `{first}` and `{second}` both map to persistent volume claim `{name}`")]
    VolumeClash { first: String, second: String, name: String },
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl KubeError {
    /// A `help:` line for the user, when there is something to suggest.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            KubeError::Instance(_) => {
                "use lower-case letters, digits and dashes, starting and ending with a letter or digit".into()
            }
            KubeError::Name { .. } => "rename it with lower-case letters, digits and dashes, starting with a letter".into(),
            KubeError::NamedUser { .. } => {
                "set `user` to a numeric \"uid:gid\" (for example \"1000:1000\") so the pod can declare runAsUser".into()
            }
            KubeError::RootUser { .. } => "set `user` to a non-zero uid such as \"65534:65534\"".into(),
            KubeError::Capability { baseline: true, .. } => {
                "drop the capability, or pass --allow-baseline to enforce the baseline profile in this namespace".into()
            }
            KubeError::Capability { baseline: false, .. } => {
                "drop the capability: even the baseline profile forbids it".into()
            }
            KubeError::Unconfined { .. } => "use seccomp 'default, 'strict or a custom profile".into(),
            KubeError::SecretClash { .. } | KubeError::VolumeClash { .. } => "rename one of them".into(),
            _ => return None,
        })
    }

    /// Whether the config (rather than the system or a flag) is at fault: exit 1 instead of 2.
    pub fn is_config(&self) -> bool {
        !matches!(
            self,
            KubeError::Io { .. } | KubeError::Seccomp { .. } | KubeError::Manifest(_) | KubeError::Instance(_)
        )
    }
}

/// The manifests of every sandbox of `project` for `instance`. `digests` maps image names to
/// manifest digests (`sha256:...`) when known.
pub fn desired(
    settings: &Env,
    project: &Project,
    instance: &str,
    digests: Option<&BTreeMap<String, Digest>>,
) -> Result<Desired, KubeError> {
    let lib_root = settings.lib_root();
    let mut sandboxes = Vec::new();
    for (name, sandbox) in &project.sandboxes {
        let digest = digests.and_then(|d| d.get(&sandbox.image)).copied();
        let manifest = manifest::resolve(project, name, digest, &lib_root)?;
        let profile = seccomp::resolve(&lib_root, &sandbox.seccomp)
            .map_err(|source| KubeError::Seccomp { sandbox: name.clone(), source })?;
        sandboxes.push(Entry { manifest, profile });
    }
    Ok(Desired { project: project.name.to_string(), instance: instance.to_owned(), sandboxes })
}

/// Everything an export produces for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `galley-<project>-<instance>`.
    pub namespace: String,
    /// The multi-document YAML.
    pub yaml: String,
    /// Localhost seccomp profiles: file name (`<hex>.json`) and canonical bytes.
    pub profiles: BTreeMap<String, Vec<u8>>,
    /// `kubectl create secret` commands, one per sandbox secret.
    pub secret_commands: Vec<String>,
    /// Things the user should know: unpinned images, limits Kubernetes cannot express.
    pub warnings: Vec<String>,
}

/// Build the objects of `desired` and render them.
pub fn export(desired: &Desired, options: &Options) -> Result<Export, KubeError> {
    let namespace = namespace_name(&desired.project, &desired.instance)?;
    let mut warnings = Vec::new();
    let mut pods = Vec::new();
    for entry in &desired.sandboxes {
        pods.push(policy::pod_security(entry, options)?);
    }
    let baseline = pods.iter().any(|p| p.needs_baseline);
    let mut docs = vec![objects::namespace(&namespace, desired, baseline), policy::default_deny(&namespace, desired)];
    docs.extend(objects::claims(&namespace, desired)?);
    let mut profiles = BTreeMap::new();
    let mut secret_commands = Vec::new();
    for (entry, pod) in desired.sandboxes.iter().zip(&pods) {
        let m = &entry.manifest;
        objects::check_sandbox_name(&m.sandbox)?;
        objects::check_image_name(&m.image.name)?;
        if m.image.digest.is_none() {
            warnings.push(format!(
                "sandbox `{}`: image `{}` has no digest; the export references it by tag and is not pinned",
                m.sandbox, m.image.name
            ));
        }
        let secrets = objects::secret_names(m)?;
        docs.extend(objects::service(&namespace, desired, m));
        docs.push(objects::deployment(&namespace, desired, entry, pod, &secrets, options)?);
        docs.extend(policy::network_policy(&namespace, desired, m));
        if let (Some(file), Some(profile)) = (&pod.profile_file, &entry.profile) {
            profiles.insert(file.clone(), profile.bytes());
        }
        secret_commands.extend(write::secret_commands(&namespace, m, &secrets));
        warnings.extend(pod.notes.iter().map(|n| format!("sandbox `{}`: {n}", m.sandbox)));
    }
    Ok(Export { namespace, yaml: write::yaml(&docs), profiles, secret_commands, warnings })
}

/// `galley-<project>-<instance>`, checked as a DNS label.
pub fn namespace_name(project: &str, instance: &str) -> Result<String, KubeError> {
    if !is_dns_label(instance) {
        return Err(KubeError::Instance(instance.to_owned()));
    }
    let name = format!("galley-{project}-{instance}");
    if !is_dns_label(&name) {
        return Err(KubeError::Name { name, what: "a namespace name is at most 63 characters" });
    }
    Ok(name)
}

/// Lower-case letters, digits and dashes, starting and ending with a letter or digit, at most
/// 63 characters (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The image reference of a manifest: by digest when known, else by the `latest` tag.
pub fn image_reference(prefix: &str, m: &SandboxManifest) -> String {
    let repo = format!("{}/{}/{}", prefix.trim_end_matches('/'), m.project, m.image.name);
    match &m.image.digest {
        Some(d) => format!("{repo}@{d}"),
        None => format!("{repo}:latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        assert_eq!(namespace_name("web", "default").unwrap(), "galley-web-default");
        assert!(matches!(namespace_name("web", "Pr_1"), Err(KubeError::Instance(_))));
        assert!(namespace_name("web", &"x".repeat(60)).is_err());
    }
}

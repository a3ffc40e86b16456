//! The runner: converge podman to the desired sandboxes of one project instance (`plan`,
//! `apply`, `status`, `destroy`, `cp`), enforcing every setting of each [`SandboxManifest`].
//!
//! The runner is a library over three inputs: the desired manifests ([`desired`]), where images
//! come from ([`ImageSource`]) and where secret values come from ([`crate::secrets::Resolver`]).
//! Every podman call goes through [`crate::exec::Runner`], so the argv builders are unit-tested
//! with [`crate::exec::Recorder`].

pub mod apply;
pub mod attach;
pub mod cp;
pub mod destroy;
pub mod copy_out;
pub mod gc;
pub mod doctor;
pub mod firewall;
pub mod forward;
pub mod hooks;
pub mod host;
pub mod images;
pub mod naming;
pub mod plan;
pub mod podman;
pub mod ports;
pub mod secrets_dir;
pub mod state;
pub mod userns;

use std::path::PathBuf;

use crate::manifest::{self, ManifestError, SandboxManifest};
use crate::model::Project;
use crate::settings::Env;

pub use naming::Instance;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Copy(#[from] copy_out::CopyError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot parse `podman {command}` output: {message}")]
    Parse { command: String, message: String },
    #[error("invalid instance name \"{0}\"")]
    InstanceName(String),
    #[error("host cannot run sandbox `{sandbox}`: {message}")]
    Host { sandbox: String, message: String, help: String },
    #[error("host check failed: {message}")]
    HostCheck { message: String, help: String },
    #[error("image for sandbox `{sandbox}` is not available: {message}")]
    Image { sandbox: String, message: String },
    #[error("secret `{name}` of sandbox `{sandbox}`: {message}")]
    Secret { sandbox: String, name: String, message: String },
    #[error("secret `{name}` of sandbox `{sandbox}`: {error}")]
    Resolve { sandbox: String, name: String, error: crate::secrets::SecretError },
    #[error("{0}")]
    Other(String),
    #[error("sandbox `{sandbox}` is not declared in galley.ncl (instance `{instance}`)")]
    Undeclared { sandbox: String, instance: String, declared: Vec<String> },
    #[error("sandbox `{sandbox}` of instance `{instance}` is not running ({state})")]
    NotRunning { sandbox: String, instance: String, state: String },
}

impl RuntimeError {
    /// A `help:` line for the user, when there is something to do.
    pub fn help(&self) -> Option<String> {
        match self {
            RuntimeError::Host { help, .. } | RuntimeError::HostCheck { help, .. } => Some(help.clone()),
            RuntimeError::Image { .. } => {
                Some("check the image with `galley build`; a lock that promises another digest needs `galley lock`".into())
            }
            RuntimeError::InstanceName(_) => Some("use lower-case letters, digits and dashes".into()),
            RuntimeError::Exec(crate::exec::ExecError::NotFound { .. }) => {
                Some("install podman (apt-get install podman) and make sure it is on PATH".into())
            }
            RuntimeError::Undeclared { sandbox, instance, declared } => Some(format!(
                "declared sandboxes: {}; declare `{sandbox}` under `sandboxes` in galley.ncl and run `{}`",
                if declared.is_empty() { "none".to_owned() } else { declared.join(", ") },
                naming::apply_command(instance)
            )),
            RuntimeError::NotRunning { instance, .. } => Some(format!("run `{}`", naming::apply_command(instance))),
            RuntimeError::Copy(e) => e.help(),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let path = path.into();
        move |source| RuntimeError::Io { path, source }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Where the image of a sandbox comes from: what to pass to `podman run`.
pub trait ImageSource: Send + Sync {
    /// The reference to run, which names one image only (its id), without asking podman
    /// whether it has it.
    fn podman_ref(&self, manifest: &SandboxManifest) -> Result<String>;
    /// Give podman the image [`ImageSource::podman_ref`] names, when it has none; returns that
    /// reference.
    fn load(&self, manifest: &SandboxManifest) -> Result<String>;
}

/// The desired state of the project without a lock: one manifest per sandbox, sorted by name,
/// with no image digests. With a current lock, the lock's manifests are used instead.
pub fn desired(settings: &Env, project: &Project) -> Result<Vec<SandboxManifest>> {
    let lib_root = settings.lib_root();
    let mut out = Vec::new();
    for name in project.sandboxes.keys() {
        out.push(manifest::resolve(project, name, None, &lib_root)?);
    }
    Ok(out)
}

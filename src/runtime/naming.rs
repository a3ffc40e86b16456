//! Names and labels of everything the runner creates, namespaced by project and instance:
//! containers `galley-<project>-<instance>-<sandbox>`, the network `galley-<project>-<instance>`,
//! volumes `galley-<project>-<instance>-<volume>`, each labelled with its owner.

use std::path::{Path, PathBuf};

use super::{Result, RuntimeError};
use crate::domain::{DEFAULT_INSTANCE, Name};
use crate::model::Network;

pub use crate::domain::labels::{LABEL_INSTANCE, LABEL_MANIFEST, LABEL_NETWORK, LABEL_PREVIEW, LABEL_PROJECT, LABEL_SANDBOX, LABEL_VOLUME};

/// The `galley apply` command line that converges `instance`.
pub fn apply_command(instance: &str) -> String {
    if instance == DEFAULT_INSTANCE { "galley apply".into() } else { format!("galley apply --instance {instance}") }
}

/// One instance of a project: the unit `apply` converges and `destroy` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub project: String,
    pub instance: String,
    /// The pull request a `galley serve` preview shows (`owner/name#N`), labelled on its objects.
    pub preview: Option<String>,
}

impl Instance {
    pub fn new(project: &str, instance: &str) -> Result<Instance> {
        if !Name::is_valid(instance) {
            return Err(RuntimeError::InstanceName(instance.to_owned()));
        }
        Ok(Instance { project: project.to_owned(), instance: instance.to_owned(), preview: None })
    }

    /// This instance as the preview of pull request `tag` (`owner/name#N`).
    pub fn with_preview(self, tag: String) -> Instance {
        Instance { preview: Some(tag), ..self }
    }

    fn prefix(&self) -> String {
        format!("galley-{}-{}", self.project, self.instance)
    }

    pub fn container(&self, sandbox: &str) -> String {
        format!("{}-{sandbox}", self.prefix())
    }

    /// The instance's internal network (no route out).
    pub fn network(&self) -> String {
        self.prefix()
    }

    /// The instance's network with a route out, joined by 'egress sandboxes only.
    pub fn egress_network(&self) -> String {
        format!("{}-egress", self.prefix())
    }

    /// The networks a sandbox with this setting joins, each with whether it is internal: none for
    /// 'none, the internal one for 'isolated, the internal and the egress one for 'egress.
    pub fn networks_for(&self, network: Network) -> Vec<(String, bool)> {
        match network {
            Network::None => vec![],
            Network::Isolated => vec![(self.network(), true)],
            Network::Egress => vec![(self.network(), true), (self.egress_network(), false)],
        }
    }

    pub fn volume(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix())
    }

    /// `--filter` arguments selecting this instance's objects.
    pub fn filters(&self) -> Vec<String> {
        vec![
            "--filter".into(),
            format!("label={LABEL_PROJECT}={}", self.project),
            "--filter".into(),
            format!("label={LABEL_INSTANCE}={}", self.instance),
        ]
    }

    /// `--label` arguments every object of this instance carries.
    pub fn labels(&self) -> Vec<String> {
        let mut labels = vec![
            "--label".into(),
            format!("{LABEL_PROJECT}={}", self.project),
            "--label".into(),
            format!("{LABEL_INSTANCE}={}", self.instance),
        ];
        if let Some(tag) = &self.preview {
            labels.extend(["--label".into(), format!("{LABEL_PREVIEW}={tag}")]);
        }
        labels
    }

    /// `GALLEY_HOME/state/<project>/<instance>`: the last applied manifests.
    pub fn state_dir(&self, home: &Path) -> PathBuf {
        home.join("state").join(&self.project).join(&self.instance)
    }

    /// `GALLEY_HOME/run/<project>/<instance>`: a tmpfs holding secret files.
    pub fn run_dir(&self, home: &Path) -> PathBuf {
        home.join("run").join(&self.project).join(&self.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_scoped_by_project_and_instance() {
        let i = Instance::new("web", "pr-12").unwrap();
        assert_eq!(i.container("api"), "galley-web-pr-12-api");
        assert_eq!(i.network(), "galley-web-pr-12");
        assert_eq!(i.volume("workspace"), "galley-web-pr-12-workspace");
        assert!(i.filters().contains(&"label=io.galley.instance=pr-12".to_owned()));
        assert!(Instance::new("web", "Bad_Name").is_err());
        assert_eq!(apply_command("default"), "galley apply");
        assert_eq!(apply_command("pr-12"), "galley apply --instance pr-12");
    }
}

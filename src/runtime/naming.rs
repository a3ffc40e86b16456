//! Names and labels of everything the runner creates, namespaced by project and instance:
//! containers `galley_<project>_<instance>_<sandbox>`, the networks `galley_<project>_<instance>`
//! and `galley_<project>_<instance>_egress`, volumes `galley_<project>_<instance>_<volume>`, each
//! labelled with its owner. `_` never occurs in a name part, so no two inputs share a name
//! (`crate::domain::labels::container_name` and its siblings).

use std::path::{Path, PathBuf};

use super::{Result, RuntimeError};
use crate::domain::{labels, DEFAULT_INSTANCE, Name};
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

    pub fn container(&self, sandbox: &str) -> String {
        labels::container_name(&self.project, &self.instance, sandbox)
    }

    /// The instance's internal network (no route out).
    pub fn network(&self) -> String {
        labels::network_name(&self.project, &self.instance)
    }

    /// The instance's network with a route out, joined by 'egress sandboxes only.
    pub fn egress_network(&self) -> String {
        labels::egress_network_name(&self.project, &self.instance)
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
        labels::volume_name(&self.project, &self.instance, name)
    }

    /// The name volume `name` had before names were joined with `_`.
    pub fn legacy_volume(&self, name: &str) -> String {
        labels::legacy_volume_name(&self.project, &self.instance, name)
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
        assert_eq!(i.container("api"), "galley_web_pr-12_api");
        assert_eq!(i.network(), "galley_web_pr-12");
        assert_eq!(i.egress_network(), "galley_web_pr-12_egress");
        assert_eq!(i.volume("workspace"), "galley_web_pr-12_workspace");
        assert_eq!(i.legacy_volume("workspace"), "galley-web-pr-12-workspace");
        assert!(i.filters().contains(&"label=io.galley.instance=pr-12".to_owned()));
        assert!(Instance::new("web", "Bad_Name").is_err());
        assert_eq!(apply_command("default"), "galley apply");
        assert_eq!(apply_command("pr-12"), "galley apply --instance pr-12");
    }

    /// A valid name of one to three dash-joined words, drawn with a xorshift generator: the
    /// inputs the former `-` joining could not tell apart (`a` + `egress`, `a-egress`).
    fn parts(rng: &mut u64) -> String {
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        let words = ["a", "b", "egress", "x1", "pr-1", "a-egress", "0"];
        let n = 1 + next() % 3;
        (0..n).map(|_| words[(next() % words.len() as u64) as usize]).collect::<Vec<_>>().join("-")
    }

    #[test]
    fn names_of_different_inputs_never_collide_across_generated_inputs() {
        use std::collections::HashMap;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        // Every name of each kind, with the input it came from; a second input for a name is a
        // collision. Networks: the internal and egress ones share podman's one namespace.
        let (mut containers, mut networks, mut volumes) = (HashMap::new(), HashMap::new(), HashMap::new());
        for _ in 0..20_000 {
            let (project, instance, part) = (parts(&mut rng), parts(&mut rng), parts(&mut rng));
            assert!(Name::is_valid(&project) && Name::is_valid(&instance) && Name::is_valid(&part));
            let i = Instance::new(&project, &instance).unwrap();
            let input = (project.clone(), instance.clone(), part.clone());
            let record = |map: &mut HashMap<String, (String, String, String)>, name: String, input: (String, String, String)| {
                let first = map.entry(name.clone()).or_insert_with(|| input.clone());
                assert_eq!(*first, input, "{name} names two inputs");
            };
            record(&mut containers, i.container(&part), input.clone());
            record(&mut volumes, i.volume(&part), input);
            record(&mut networks, i.network(), (project.clone(), instance.clone(), "internal".into()));
            record(&mut networks, i.egress_network(), (project, instance, "egress".into()));
        }
        assert!(containers.len() > 5_000 && networks.len() > 1_000, "{} {}", containers.len(), networks.len());
        // The collision the former names had: instance `a-egress`'s network was instance `a`'s
        // egress network.
        let (a, a_egress) = (Instance::new("p", "a").unwrap(), Instance::new("p", "a-egress").unwrap());
        assert_ne!(a.egress_network(), a_egress.network());
    }
}

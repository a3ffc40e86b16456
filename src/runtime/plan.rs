//! Desired versus live: which sandboxes to create, replace (and which fields changed), keep or
//! destroy, and which networks and volumes to create or remove.

use std::path::Path;

use owo_colors::OwoColorize;
use serde::Serialize;

use super::naming::Instance;
use super::podman::{LiveContainer, Podman};
use super::state::{self, Change};
use super::Result;
use crate::manifest::SandboxManifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Create,
    Replace,
    Unchanged,
    Destroy,
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxAction {
    pub sandbox: String,
    pub container: String,
    pub action: Kind,
    /// Why a sandbox is replaced, for people.
    pub reasons: Vec<String>,
    /// The manifest fields a replacement changes, when the last applied manifest is known.
    pub changes: Vec<Change>,
    #[serde(skip)]
    pub manifest: Option<SandboxManifest>,
}

/// Networks and volumes to create, networks to remove. Volumes are never removed by `apply`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    pub create_networks: Vec<(String, bool)>,
    pub remove_networks: Vec<String>,
    pub create_volumes: Vec<String>,
    /// Volumes under the names an older galley gave them (old, new): their files move to the new
    /// volume, then the old one goes.
    pub move_volumes: Vec<(String, String)>,
    /// Networks kept whose host side is open (galley's firewall rules missing or changed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub close_networks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub project: String,
    pub instance: String,
    pub sandboxes: Vec<SandboxAction>,
    pub resources: Resources,
}

/// What podman has for an instance.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub containers: Vec<LiveContainer>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// The instance's networks whose host side is open (read only as root).
    pub open_host_side: Vec<String>,
}

/// Read the instance's containers, networks and volumes: three podman calls, run concurrently.
pub fn live(podman: &Podman<'_>, instance: &Instance) -> Result<Live> {
    read(podman, instance, true)
}

/// What a plan of `desired` needs of [`live`]: the volumes only when a desired sandbox has one
/// (a plan creates and moves the volumes of desired sandboxes, and never removes one).
pub fn live_for(podman: &Podman<'_>, instance: &Instance, desired: &[SandboxManifest]) -> Result<Live> {
    read(podman, instance, desired.iter().any(|m| !m.volumes.is_empty()))
}

/// [`live`] but the volumes: what can be read before the desired sandboxes are known.
pub fn live_but_volumes(podman: &Podman<'_>, instance: &Instance) -> Result<Live> {
    read(podman, instance, false)
}

/// [`live_for`] from a [`live_but_volumes`] of the same instance: the volumes are read now when
/// a desired sandbox has one.
pub fn complete_for(podman: &Podman<'_>, instance: &Instance, desired: &[SandboxManifest], mut live: Live) -> Result<Live> {
    if desired.iter().any(|m| !m.volumes.is_empty()) {
        live.volumes = podman.owned("volume", instance)?;
    }
    Ok(live)
}

fn read(podman: &Podman<'_>, instance: &Instance, volumes: bool) -> Result<Live> {
    std::thread::scope(|s| {
        let networks = s.spawn(|| podman.owned("network", instance));
        let volumes = volumes.then(|| s.spawn(|| podman.owned("volume", instance)));
        let containers = podman.containers(instance)?;
        let networks = networks.join().expect("podman thread")?;
        let open_host_side = super::firewall::open(podman, &networks);
        let volumes = volumes.map(|v| v.join().expect("podman thread")).transpose()?.unwrap_or_default();
        Ok(Live { containers, networks, volumes, open_host_side })
    })
}

pub fn compute(home: &Path, instance: &Instance, desired: &[SandboxManifest], live: &Live) -> Plan {
    let mut sandboxes = Vec::new();
    for m in desired {
        let container = instance.container(&m.sandbox);
        let digest = m.digest().to_string();
        let found = live.containers.iter().find(|c| c.sandbox() == m.sandbox || c.name == container);
        let (action, reasons, changes) = match found {
            None => (Kind::Create, vec![], vec![]),
            // A container of an older galley, under the name it gave (found by its labels).
            Some(c) if c.name != container => (Kind::Replace, vec![format!("renamed from {} (names now join their parts with `_`, so no two instances share one)", c.name)], vec![]),
            Some(c) if c.manifest_digest() != digest => match state::read(home, instance, &m.sandbox, c.manifest_digest()) {
                Some(old) => (Kind::Replace, vec!["manifest changed".into()], state::diff(&old, m)),
                None => (Kind::Replace, vec!["manifest changed (the previous manifest is not recorded)".into()], vec![]),
            },
            Some(c) if !c.running() => {
                let mut why = vec![format!("container is {} (exit code {})", c.state, c.exit_code)];
                if !m.secrets.is_empty() {
                    why.push("its secret files were removed when it stopped: only `galley apply` starts it again (`podman start` fails on the missing files)".into());
                }
                (Kind::Replace, why, vec![])
            }
            Some(_) if super::forward::forwarded(m) && !super::forward::running(home, instance, m) => {
                (Kind::Replace, vec!["its port forwarder is not running".into()], vec![])
            }
            Some(_) => (Kind::Unchanged, vec![], vec![]),
        };
        // A replacement removes the live container, whatever its name.
        let container = found.filter(|_| action == Kind::Replace).map_or(container, |c| c.name.clone());
        sandboxes.push(SandboxAction { sandbox: m.sandbox.clone(), container, action, reasons, changes, manifest: Some(m.clone()) });
    }
    for c in &live.containers {
        if !desired.iter().any(|m| m.sandbox == c.sandbox() || instance.container(&m.sandbox) == c.name) {
            let reasons = vec!["no longer declared".into()];
            let sandbox = c.sandbox().to_owned();
            sandboxes.push(SandboxAction { sandbox, container: c.name.clone(), action: Kind::Destroy, reasons, changes: vec![], manifest: None });
        }
    }
    let mut wanted: Vec<(String, bool)> = desired.iter().flat_map(|m| instance.networks_for(m.network)).collect();
    wanted.sort();
    wanted.dedup();
    let mut volumes: Vec<String> = desired.iter().flat_map(|m| m.volumes.iter().map(|v| instance.volume(&v.name))).collect();
    volumes.sort();
    volumes.dedup();
    let mut move_volumes: Vec<(String, String)> = desired
        .iter()
        .flat_map(|m| m.volumes.iter())
        .map(|v| (instance.legacy_volume(&v.name), instance.volume(&v.name)))
        .filter(|(old, new)| live.volumes.contains(old) && !live.volumes.contains(new))
        .collect();
    move_volumes.sort();
    move_volumes.dedup();
    let resources = Resources {
        create_networks: wanted.iter().filter(|(n, _)| !live.networks.contains(n)).cloned().collect(),
        remove_networks: live.networks.iter().filter(|n| !wanted.iter().any(|(w, _)| w == *n)).cloned().collect(),
        create_volumes: volumes.into_iter().filter(|v| !live.volumes.contains(v)).collect(),
        move_volumes,
        close_networks: wanted.iter().filter(|(n, _)| live.open_host_side.contains(n)).map(|(n, _)| n.clone()).collect(),
    };
    Plan { project: instance.project.clone(), instance: instance.instance.clone(), sandboxes, resources }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        let r = &self.resources;
        self.sandboxes.iter().any(|s| s.action != Kind::Unchanged)
            || !r.create_networks.is_empty()
            || !r.remove_networks.is_empty()
            || !r.create_volumes.is_empty()
            || !r.move_volumes.is_empty()
            || !r.close_networks.is_empty()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.sandboxes.iter().filter(|s| s.action == kind).count()
    }

    /// The plan for people, colored when `color`.
    pub fn render(&self, color: bool) -> String {
        let paint = |text: String, kind: Kind| -> String {
            if !color {
                return text;
            }
            match kind {
                Kind::Create => text.green().to_string(),
                Kind::Replace => text.yellow().to_string(),
                Kind::Destroy => text.red().to_string(),
                Kind::Unchanged => text.dimmed().to_string(),
            }
        };
        let mut out = String::new();
        for s in &self.sandboxes {
            let (sign, word) = match s.action {
                Kind::Create => ('+', "create"),
                Kind::Replace => ('~', "replace"),
                Kind::Unchanged => ('=', "unchanged"),
                Kind::Destroy => ('-', "destroy"),
            };
            out += &paint(format!("{sign} {word:<9} {} ({})", s.sandbox, s.container), s.action);
            out.push('\n');
            for r in s.reasons.iter().filter(|_| s.changes.is_empty()) {
                out += &format!("      {r}\n");
            }
            for c in &s.changes {
                let old = c.old.as_deref().unwrap_or("(none)");
                let new = c.new.as_deref().unwrap_or("(none)");
                out += &format!("      {}: {} -> {}\n", c.field, paint(old.to_owned(), Kind::Destroy), paint(new.to_owned(), Kind::Create));
            }
        }
        for (n, internal) in &self.resources.create_networks {
            let what = if *internal { "internal, isolated" } else { "egress, isolated" };
            out += &paint(format!("+ network   {n} ({what})"), Kind::Create);
            out.push('\n');
        }
        for n in &self.resources.close_networks {
            out += &paint(format!("~ network   {n} (host side open: galley's firewall rules are missing)"), Kind::Replace);
            out.push('\n');
        }
        for n in &self.resources.remove_networks {
            out += &paint(format!("- network   {n}"), Kind::Destroy);
            out.push('\n');
        }
        for v in &self.resources.create_volumes {
            out += &paint(format!("+ volume    {v}"), Kind::Create);
            out.push('\n');
        }
        for (old, new) in &self.resources.move_volumes {
            out += &paint(format!("~ volume    {old} -> {new} (files moved to galley's new name)"), Kind::Replace);
            out.push('\n');
        }
        out += &format!(
            "plan: {} to create, {} to replace, {} to destroy, {} unchanged\n",
            self.count(Kind::Create),
            self.count(Kind::Replace),
            self.count(Kind::Destroy),
            self.count(Kind::Unchanged)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::naming::{LABEL_MANIFEST, LABEL_SANDBOX};

    fn live_container(instance: &Instance, m: &SandboxManifest, digest: &crate::domain::Digest, state: &str) -> LiveContainer {
        LiveContainer {
            id: "id".into(),
            name: instance.container(&m.sandbox),
            state: state.into(),
            exit_code: 0,
            labels: [(LABEL_SANDBOX.to_owned(), m.sandbox.clone()), (LABEL_MANIFEST.to_owned(), digest.to_string())].into(),
            ports: vec![],
        }
    }

    #[test]
    fn plan_classifies_and_diffs() {
        let home = tempfile::tempdir().unwrap();
        let instance = Instance::new("web", "default").unwrap();
        let old = crate::runtime::podman::tests::manifest();
        state::write(home.path(), &instance, &old).unwrap();
        let mut new = old.clone();
        new.resources.memory = "256m".parse().unwrap();
        let mut keep = old.clone();
        keep.sandbox = "keep".into();
        let mut orphan = old.clone();
        orphan.sandbox = "gone".into();
        let live = Live {
            containers: vec![
                live_container(&instance, &old, &old.digest(), "running"),
                live_container(&instance, &keep, &keep.digest(), "running"),
                live_container(&instance, &orphan, &orphan.digest(), "running"),
            ],
            networks: vec![instance.network()],
            volumes: vec![],
            open_host_side: vec![],
        };
        let plan = compute(home.path(), &instance, &[new.clone(), keep.clone()], &live);
        let kinds: Vec<(&str, Kind)> = plan.sandboxes.iter().map(|s| (s.sandbox.as_str(), s.action)).collect();
        assert_eq!(kinds, vec![("api", Kind::Replace), ("keep", Kind::Unchanged), ("gone", Kind::Destroy)]);
        let change = &plan.sandboxes[0].changes;
        assert_eq!(change.len(), 1);
        assert_eq!(change[0].field, "resources.memory");
        assert_eq!((change[0].old.as_deref(), change[0].new.as_deref()), (Some("\"128m\""), Some("\"256m\"")));
        assert_eq!(plan.resources.create_networks, vec![(instance.egress_network(), false)]);
        assert_eq!(plan.resources.create_volumes, vec![instance.volume("workspace")]);
        assert!(plan.has_changes());
        let text = plan.render(false);
        assert!(text.contains("resources.memory: \"128m\" -> \"256m\""), "{text}");
        assert!(text.contains("plan: 0 to create, 1 to replace, 1 to destroy, 1 unchanged"), "{text}");
        let same = compute(home.path(), &instance, &[keep.clone()], &Live { containers: vec![live_container(&instance, &keep, &keep.digest(), "running")], networks: vec![instance.network(), instance.egress_network()], volumes: vec![instance.volume("workspace")], open_host_side: vec![] });
        assert!(!same.has_changes(), "{}", same.render(false));
        let open = Live {
            containers: vec![live_container(&instance, &keep, &keep.digest(), "running")],
            networks: vec![instance.network(), instance.egress_network()],
            volumes: vec![instance.volume("workspace")],
            open_host_side: vec![instance.network()],
        };
        let repair = compute(home.path(), &instance, &[keep.clone()], &open);
        assert_eq!(repair.resources.close_networks, vec![instance.network()]);
        assert!(repair.has_changes() && repair.render(false).contains("host side open"), "{}", repair.render(false));
        let stopped = compute(home.path(), &instance, &[keep.clone()], &Live { containers: vec![live_container(&instance, &keep, &keep.digest(), "exited")], ..Live::default() });
        assert_eq!(stopped.sandboxes[0].action, Kind::Replace);
    }

    #[test]
    fn an_instance_under_the_former_names_is_migrated_by_its_labels() {
        let home = tempfile::tempdir().unwrap();
        let instance = Instance::new("web", "default").unwrap();
        let m = crate::runtime::podman::tests::manifest();
        let mut old = live_container(&instance, &m, &m.digest(), "running");
        old.name = "galley-web-default-api".into();
        let live = Live { containers: vec![old], networks: vec!["galley-web-default".into()], volumes: vec!["galley-web-default-workspace".into()], ..Live::default() };
        let plan = compute(home.path(), &instance, &[m.clone()], &live);
        let a = &plan.sandboxes[0];
        assert_eq!((a.action, a.container.as_str()), (Kind::Replace, "galley-web-default-api"), "the old container is the one removed");
        assert!(a.reasons[0].contains("renamed from galley-web-default-api"), "{:?}", a.reasons);
        assert_eq!(plan.resources.remove_networks, vec!["galley-web-default"]);
        assert_eq!(plan.resources.create_volumes, vec!["galley_web_default_workspace"]);
        assert_eq!(plan.resources.move_volumes, vec![("galley-web-default-workspace".to_owned(), "galley_web_default_workspace".to_owned())]);
        let text = plan.render(false);
        assert!(text.contains("~ volume    galley-web-default-workspace -> galley_web_default_workspace"), "{text}");
    }
}

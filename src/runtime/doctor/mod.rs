//! Host checks shared by `galley doctor`, `apply` and `build`: every piece galley needs on this
//! host (podman, an OCI runtime that starts a container, netavark and the firewall tool it calls,
//! aardvark-dns, cgroups, limits, user namespaces, buildah, GALLEY_HOME, the base registries),
//! each with pass, fail or skip, what was seen, and for a failure the package or setting to fix.
//!
//! `apply` and `build` run the same functions before they create anything, so a missing piece
//! fails there with the message and help `galley doctor` prints.

mod remembered;
mod system;
mod tools;

use std::collections::BTreeMap;

use serde::Serialize;

use super::host;
use super::podman::Podman;
use super::RuntimeError;
use crate::exec::Runner;
use crate::model::Project;
use crate::settings::Env;

pub use remembered::start_checks;
pub use system::{cgroups, home, rlimits, sandbox_ids, subids, userns, MIN_FREE_BYTES};
pub use tools::{buildah, helper_dirs, network, oci_runtime, podman};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check: a stable `id`, what it checks, the outcome, what was seen and, for a failure, the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub detail: String,
    pub help: Option<String>,
}

impl Check {
    pub fn pass(id: &str, title: &str, detail: impl Into<String>) -> Check {
        Check { id: id.into(), title: title.into(), status: Status::Pass, detail: detail.into(), help: None }
    }

    pub fn fail(id: &str, title: &str, detail: impl Into<String>, help: impl Into<String>) -> Check {
        Check { id: id.into(), title: title.into(), status: Status::Fail, detail: detail.into(), help: Some(help.into()) }
    }

    /// A check that could not run, with the reason; never counted as passed.
    pub fn skip(id: &str, title: &str, detail: impl Into<String>) -> Check {
        Check { id: id.into(), title: title.into(), status: Status::Skip, detail: detail.into(), help: None }
    }

    /// The failure as a runner error, for one sandbox or (`None`) for every one, with doctor's
    /// detail and help.
    pub fn error(&self, sandbox: Option<&str>) -> RuntimeError {
        let (message, help) = (format!("{}: {}", self.id, self.detail), self.help.clone().unwrap_or_default());
        match sandbox {
            Some(sandbox) => RuntimeError::Host { sandbox: sandbox.into(), message, help },
            None => RuntimeError::HostCheck { message, help },
        }
    }
}

/// The first failed check as a runner error (see [`Check::error`]).
pub fn first_failure(checks: &[Check], sandbox: Option<&str>) -> Result<(), RuntimeError> {
    checks.iter().find(|c| c.status == Status::Fail).map_or(Ok(()), |c| Err(c.error(sandbox)))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
}

/// What `galley doctor --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub summary: Summary,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let summary = Summary { pass: count(Status::Pass), fail: count(Status::Fail), skip: count(Status::Skip) };
        Report { checks, summary }
    }
}

/// Every check, in order; one per base registry of `project` when there is one.
pub fn all(runner: &dyn Runner, settings: &Env, project: Option<&Project>) -> Report {
    let facts = host::system();
    let runtime = host::runtime_to_use(&settings.oci_runtime);
    let podman_cmds = Podman { runner, runtime: runtime.as_ref().ok().cloned().flatten() };
    let mut checks = vec![podman(&podman_cmds)];
    let has_podman = checks[0].status == Status::Pass;
    checks.push(match &runtime {
        Ok(_) if !has_podman => Check::skip(tools::OCI_RUNTIME, tools::OCI_RUNTIME_TITLE, "podman is not available (see the podman check)"),
        Ok(_) => oci_runtime(&podman_cmds, &facts),
        Err(e) => Check::fail(tools::OCI_RUNTIME, tools::OCI_RUNTIME_TITLE, e.to_string(), e.help().unwrap_or_default()),
    });
    checks.extend(network(&podman_cmds));
    checks.extend([cgroups(&facts), rlimits(&facts), subids(&facts), userns(), sandbox_ids(&facts), buildah(runner), home(&settings.home)]);
    if let Some(project) = project {
        checks.extend(registries(settings, project));
    }
    Report::new(checks)
}

/// The checks building `only` (every image when empty) needs: buildah when one of them has a RUN
/// step, podman when the images are then loaded into it.
pub fn for_build(runner: &dyn Runner, project: &Project, only: &[String], loading: bool) -> Vec<Check> {
    let selected = |name: &String| only.is_empty() || only.contains(name);
    let mut checks = Vec::new();
    if project.images.iter().any(|(name, image)| selected(name) && !image.run.is_empty()) {
        checks.push(buildah(runner));
    }
    if loading {
        checks.push(podman(&Podman { runner, runtime: None }));
    }
    checks
}

/// `registry:<host>` for each registry a base image of `project` comes from, probed the way a
/// pull starts: through the SSRF guard, which lets a private address through only where the
/// project's registry entry allows it.
pub fn registries(settings: &Env, project: &Project) -> Vec<Check> {
    let mut bases: BTreeMap<String, String> = BTreeMap::new();
    for r in project.images.values().filter_map(|i| i.base.image()) {
        bases.entry(r.registry.clone()).or_insert_with(|| r.to_string());
    }
    let title = "base image registry reachable through galley's SSRF guard";
    let store = match crate::image::Store::open(&settings.home) {
        Ok(s) => s,
        Err(e) => {
            return bases.keys().map(|h| Check::skip(&format!("registry:{h}"), title, format!("cannot open the image store: {e}"))).collect();
        }
    };
    let puller = crate::image::pull::Puller::new(project, &store);
    bases
        .iter()
        .map(|(host, reference)| {
            let id = format!("registry:{host}");
            match puller.as_ref().map_err(|e| e.to_string()).and_then(|p| p.probe(reference).map_err(|e| e.to_string())) {
                Ok(()) => Check::pass(&id, title, format!("{host} answers /v2/ (for {reference})")),
                Err(e) if e.contains("SSRF guard") => Check::fail(
                    &id,
                    title,
                    e,
                    format!("set allow_private = true in registries.\"{host}\" of galley.ncl if this registry is yours, or use a registry on a public address"),
                ),
                Err(e) => Check::fail(&id, title, e, format!("check that {host} is up and reachable from this host (its name, address, port and TLS), or declare it in registries with insecure = true if it speaks plain HTTP")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_each_status_and_serializes_in_the_documented_shape() {
        let r = Report::new(vec![
            Check::pass("podman", "podman", "podman version 4.3.1"),
            Check::fail("firewall", "firewall", "iptables is not on PATH", "install iptables (apt-get install iptables)"),
            Check::skip("subids", "subids", "running as root"),
        ]);
        assert_eq!(r.summary, Summary { pass: 1, fail: 1, skip: 1 });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "checks": [
                    { "id": "podman", "title": "podman", "status": "pass", "detail": "podman version 4.3.1", "help": null },
                    { "id": "firewall", "title": "firewall", "status": "fail", "detail": "iptables is not on PATH", "help": "install iptables (apt-get install iptables)" },
                    { "id": "subids", "title": "subids", "status": "skip", "detail": "running as root", "help": null },
                ],
                "summary": { "pass": 1, "fail": 1, "skip": 1 },
            })
        );
        let e = first_failure(&r.checks, Some("web")).unwrap_err();
        assert_eq!(e.to_string(), "host cannot run sandbox `web`: firewall: iptables is not on PATH");
        assert_eq!(e.help().as_deref(), Some("install iptables (apt-get install iptables)"));
        let e = first_failure(&r.checks, None).unwrap_err();
        assert_eq!(e.to_string(), "host check failed: firewall: iptables is not on PATH");
        assert!(first_failure(&r.checks[..1], None).is_ok());
    }
}

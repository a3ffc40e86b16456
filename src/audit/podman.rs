//! podman's side of the audit: finding a project's containers by label and reading podman's
//! record of them and of their networks, each with one batched call.

use std::collections::BTreeMap;

use super::*;

/// podman. The audit only reads (ps, inspect, image mount), so no OCI runtime is chosen.
pub fn podman() -> Cmd {
    Cmd::new("podman")
}

/// A container found under a project's labels, with podman's record of it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: String,
    pub sandbox: String,
    pub inspect: serde_json::Value,
}

impl Observed {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.inspect.pointer("/Config/Labels").and_then(|l| l.get(key)).and_then(|v| v.as_str())
    }

    pub fn image_digest(&self) -> Option<&str> {
        self.inspect.get("ImageDigest").and_then(|v| v.as_str())
    }

    pub fn pid(&self) -> Option<u32> {
        self.inspect.pointer("/State/Pid").and_then(|v| v.as_u64()).filter(|p| *p > 0).map(|p| p as u32)
    }

    pub fn running(&self) -> bool {
        self.inspect.pointer("/State/Running").and_then(|v| v.as_bool()).unwrap_or(false)
    }
}

/// Find the containers of `project`/`instance` and inspect them all with one podman call.
pub fn observe(runner: &dyn Runner, project: &str, instance: &str) -> Result<Vec<Observed>, AuditError> {
    let ps = runner.check(
        &podman()
            .args(["ps", "-a", "--no-trunc", "--format", "{{.ID}}"])
            .arg(format!("--filter=label={LABEL_PROJECT}={project}"))
            .arg(format!("--filter=label={LABEL_INSTANCE}={instance}")),
    )?;
    let ids: Vec<String> =
        ps.stdout_str().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = runner.check(&podman().args(["container", "inspect"]).args(&ids))?;
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
    let mut observed: Vec<Observed> = all
        .into_iter()
        .filter_map(|inspect| {
            let name = inspect.get("Name")?.as_str()?.trim_start_matches('/').to_owned();
            // A container under the project's labels but no sandbox's is audited as undeclared.
            let labels = inspect.pointer("/Config/Labels");
            let sandbox =
                labels.and_then(|l| l.get(LABEL_SANDBOX)).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            Some(Observed { name, sandbox, inspect })
        })
        .collect();
    observed.sort_by(|a, b| (&a.sandbox, &a.name).cmp(&(&b.sandbox, &b.name)));
    Ok(observed)
}

/// What the audit knows beyond one container: the instance, its networks and galley's other
/// sandboxes on the host.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub instance: String,
    /// Whether each network the audited containers are on is internal (no route out).
    pub internal: BTreeMap<String, bool>,
    /// Every other running galley container on the host (any project), by name, with its pid:
    /// no two may share host ids.
    pub others: Vec<(String, u32)>,
    /// Whether the host side of each network is closed, as the runner's firewall reads it
    /// (`Err` says what is missing); a network left out was not read.
    pub host_side: BTreeMap<String, Result<(), String>>,
}

impl Context {
    /// Inspect every network of `observed` with one podman call.
    pub fn new(runner: &dyn Runner, instance: &str, observed: &[&Observed]) -> Result<Context, AuditError> {
        let names: std::collections::BTreeSet<String> = observed
            .iter()
            .filter_map(|o| o.inspect.pointer("/NetworkSettings/Networks").and_then(|n| n.as_object()))
            .flat_map(|n| n.keys().cloned())
            .collect();
        let mut internal = BTreeMap::new();
        if !names.is_empty() {
            let out = runner.check(&podman().args(["network", "inspect"]).args(&names))?;
            let nets: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
            for n in nets {
                let name = n.get("name").or(n.get("Name")).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let flag = n.get("internal").or(n.get("Internal")).and_then(|v| v.as_bool()).unwrap_or(false);
                internal.insert(name, flag);
            }
        }
        let others = running_galley_containers(runner)?
            .into_iter()
            .filter(|(name, _)| !observed.iter().any(|o| &o.name == name))
            .collect();
        Ok(Context { instance: instance.to_owned(), internal, others, host_side: BTreeMap::new() })
    }
}

/// Every running container with galley's project label, whoever's, with its pid: one `podman ps`.
fn running_galley_containers(runner: &dyn Runner) -> Result<Vec<(String, u32)>, AuditError> {
    let out = runner.check(&podman().args(["ps", "--format", "json"]).arg(format!("--filter=label={LABEL_PROJECT}")))?;
    if out.stdout_str().trim().is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
    Ok(all
        .iter()
        .filter_map(|c| {
            let name = c.pointer("/Names/0")?.as_str()?.to_owned();
            let pid = c.get("Pid")?.as_u64().filter(|p| *p > 0)?;
            Some((name, u32::try_from(pid).ok()?))
        })
        .collect())
}

/// Pick the running containers to audit: those of `wanted` sandboxes (all when empty).
pub fn select<'a>(
    observed: &'a [Observed],
    wanted: &[String],
    project: &str,
    instance: &str,
) -> Result<Vec<&'a Observed>, AuditError> {
    for w in wanted {
        if !observed.iter().any(|o| &o.sandbox == w && o.running()) {
            return Err(AuditError::NotRunning(w.clone()));
        }
    }
    let chosen: Vec<&Observed> =
        observed.iter().filter(|o| o.running() && (wanted.is_empty() || wanted.contains(&o.sandbox))).collect();
    if chosen.is_empty() {
        return Err(AuditError::NothingRunning { project: project.into(), instance: instance.into() });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};

    #[test]
    fn containers_are_found_by_label_and_inspected_in_one_call() {
        let r = Recorder::default();
        r.answer("podman ps", Output { code: Some(0), stdout: b"aaa\nbbb\n".to_vec(), ..Output::default() });
        let inspect = serde_json::json!([
            { "Name": "galley-p-default-web", "Config": { "Labels": { "io.galley.sandbox": "web" } } },
            { "Name": "galley-p-default-api", "Config": { "Labels": { "io.galley.sandbox": "api" } } },
        ]);
        r.answer(
            "podman container inspect",
            Output { code: Some(0), stdout: inspect.to_string().into_bytes(), ..Output::default() },
        );
        let found = observe(&r, "p", "default").unwrap();
        assert_eq!(found.iter().map(|o| o.sandbox.as_str()).collect::<Vec<_>>(), ["api", "web"]);
        let calls = r.commands();
        assert_eq!(calls.len(), 2);
        assert!(
            calls[0].contains("--filter=label=io.galley.project=p")
                && calls[0].contains("--filter=label=io.galley.instance=default")
        );
        assert_eq!(calls[1], "podman container inspect aaa bbb");
    }

    #[test]
    fn named_sandboxes_must_be_running() {
        let o = |s: &str, running: bool| Observed {
            name: format!("c-{s}"),
            sandbox: s.into(),
            inspect: serde_json::json!({ "State": { "Running": running } }),
        };
        let all = [o("web", true), o("db", false)];
        assert!(matches!(select(&all, &["db".into()], "p", "i"), Err(AuditError::NotRunning(s)) if s == "db"));
        assert_eq!(select(&all, &["web".into()], "p", "i").unwrap().len(), 1);
        assert!(matches!(select(&[], &[], "p", "i"), Err(AuditError::NothingRunning { .. })));
    }
}

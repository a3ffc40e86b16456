//! podman's side of the audit: finding a project's containers by label and reading podman's
//! record of them and of their networks, each with one batched call.

use std::collections::BTreeMap;

use super::*;

/// podman. The audit only reads (ps, inspect, image mount), so no OCI runtime is chosen.
pub use crate::exec::podman;

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

/// Every running galley container on the host, from one `podman ps`: the ids of those of one
/// project's instance, and each one's name and pid. Only running containers are audited.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub ids: Vec<String>,
    pub running: Vec<(String, u32)>,
}

/// List every running container with galley's project label, whoever's: one `podman ps`.
pub fn list(runner: &dyn Runner, project: &str, instance: &str) -> Result<Listing, AuditError> {
    let out = runner.check(&podman().args(["ps", "--no-trunc", "--format", "json"]).arg(format!("--filter=label={LABEL_PROJECT}")))?;
    if out.stdout_str().trim().is_empty() {
        return Ok(Listing::default());
    }
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
    let mut listing = Listing::default();
    for c in &all {
        let label = |k: &str| c.pointer("/Labels").and_then(|l| l.get(k)).and_then(|v| v.as_str());
        let id = c.get("Id").and_then(|v| v.as_str()).unwrap_or_default();
        // A container that stopped while podman listed them is not audited.
        let running = c.get("State").and_then(|v| v.as_str()) == Some("running");
        if running && label(LABEL_PROJECT) == Some(project) && label(LABEL_INSTANCE) == Some(instance) && !id.is_empty() {
            listing.ids.push(id.to_owned());
        }
        let name = c.pointer("/Names/0").and_then(|v| v.as_str());
        let pid = c.get("Pid").and_then(|v| v.as_u64()).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok());
        if let (true, Some(name), Some(pid)) = (running, name, pid) {
            listing.running.push((name.to_owned(), pid));
        }
    }
    Ok(listing)
}

/// podman's record of each of `refs` (names or ids) it has, in one `podman container inspect`;
/// with `all`, every one must exist.
fn inspect(runner: &dyn Runner, refs: &[String], all: bool) -> Result<Vec<Observed>, AuditError> {
    let c = podman().args(["container", "inspect"]).args(refs);
    let out = if all { runner.check(&c)? } else { runner.run(&c)? };
    let parsed: Result<Vec<serde_json::Value>, _> = serde_json::from_slice(&out.stdout);
    let all_found = match parsed {
        Ok(v) => v,
        // A name podman does not have fails the call; the others are still printed.
        Err(_) if !all && out.stdout_str().trim().is_empty() => Vec::new(),
        Err(e) => return Err(AuditError::Parse(e.to_string())),
    };
    Ok(all_found
        .into_iter()
        .filter_map(|inspect| {
            let name = inspect.get("Name")?.as_str()?.trim_start_matches('/').to_owned();
            // A container under the project's labels but no sandbox's is audited as undeclared.
            let labels = inspect.pointer("/Config/Labels");
            let sandbox =
                labels.and_then(|l| l.get(LABEL_SANDBOX)).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            Some(Observed { name, sandbox, inspect })
        })
        .collect())
}

/// Find the running containers of `project`/`instance` by their labels and inspect them, with
/// `expected` (the names the declared sandboxes' containers have) inspected while podman lists
/// the containers: a record counts only for a container the listing holds, and any listed one
/// not among them is inspected after. Also returns every running galley container's name and pid.
pub fn observe(runner: &dyn Runner, project: &str, instance: &str, expected: &[String]) -> Result<(Vec<Observed>, Vec<(String, u32)>), AuditError> {
    let (listing, by_name) = std::thread::scope(|s| {
        let by_name = (!expected.is_empty()).then(|| s.spawn(|| inspect(runner, expected, false)));
        let listing = list(runner, project, instance);
        (listing, by_name.map(|t| t.join().expect("inspect thread")))
    });
    let listing = listing?;
    let id = |o: &Observed| o.inspect.get("Id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let mut observed: Vec<Observed> = by_name.transpose()?.unwrap_or_default().into_iter().filter(|o| listing.ids.contains(&id(o))).collect();
    let rest: Vec<String> = listing.ids.iter().filter(|i| !observed.iter().any(|o| id(o) == **i)).cloned().collect();
    if !rest.is_empty() {
        observed.extend(inspect(runner, &rest, true)?);
    }
    observed.sort_by(|a, b| (&a.sandbox, &a.name).cmp(&(&b.sandbox, &b.name)));
    Ok((observed, listing.running))
}

/// What the audit knows beyond one container: the instance, its networks and galley's other
/// sandboxes on the host.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub instance: String,
    /// Whether each network the audited containers are on is internal (no route out).
    pub internal: BTreeMap<String, bool>,
    /// podman's record of each of those networks (`podman network inspect`).
    pub networks: BTreeMap<String, serde_json::Value>,
    /// Every other running galley container on the host (any project), by name, with its pid:
    /// no two may share host ids.
    pub others: Vec<(String, u32)>,
    /// Whether the host side of each network is closed, as the runner's firewall reads it
    /// (`Err` says what is missing); a network left out was not read.
    pub host_side: BTreeMap<String, Result<(), String>>,
}

/// podman's record of each of `names` it has (one `podman network inspect`), by name.
pub fn inspect_networks(runner: &dyn Runner, names: &[String]) -> Result<BTreeMap<String, serde_json::Value>, AuditError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = runner.run(&podman().args(["network", "inspect"]).args(names))?;
    let nets: Vec<serde_json::Value> = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        // A missing network fails the call; the others are still printed.
        Err(_) if !out.success() && out.stdout_str().trim().is_empty() => Vec::new(),
        Err(e) => return Err(AuditError::Parse(e.to_string())),
    };
    Ok(by_name(nets))
}

/// podman's network records by their name (`name`, or `Name` in older podman).
fn by_name(nets: Vec<serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    nets.into_iter().map(|n| (n.get("name").or(n.get("Name")).and_then(|v| v.as_str()).unwrap_or_default().to_owned(), n)).collect()
}

impl Context {
    /// The context of `observed`: `networks` holds what is known of their networks already (as
    /// [`inspect_networks`] returns it); those it lacks are inspected with one more call, and a
    /// network podman does not have is an error. `running` is every running galley container.
    pub fn new(
        runner: &dyn Runner,
        instance: &str,
        observed: &[&Observed],
        mut networks: BTreeMap<String, serde_json::Value>,
        running: Vec<(String, u32)>,
    ) -> Result<Context, AuditError> {
        let names: std::collections::BTreeSet<String> = observed
            .iter()
            .filter_map(|o| o.inspect.pointer("/NetworkSettings/Networks").and_then(|n| n.as_object()))
            .flat_map(|n| n.keys().cloned())
            .collect();
        let missing: Vec<String> = names.iter().filter(|n| !networks.contains_key(*n)).cloned().collect();
        if !missing.is_empty() {
            let out = runner.check(&podman().args(["network", "inspect"]).args(&missing))?;
            let nets: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
            networks.extend(by_name(nets));
        }
        networks.retain(|n, _| names.contains(n));
        let internal = networks
            .iter()
            .map(|(name, n)| (name.clone(), n.get("internal").or(n.get("Internal")).and_then(|v| v.as_bool()).unwrap_or(false)))
            .collect();
        let others = running.into_iter().filter(|(name, _)| !observed.iter().any(|o| &o.name == name)).collect();
        Ok(Context { instance: instance.to_owned(), internal, networks, others, host_side: BTreeMap::new() })
    }
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
    fn containers_are_found_by_label_and_inspected_while_podman_lists_them() {
        let r = Recorder::default();
        let ps = serde_json::json!([
            { "Id": "aaa", "Names": ["galley_p_default_web"], "State": "running", "Pid": 10, "Labels": { "io.galley.project": "p", "io.galley.instance": "default" } },
            { "Id": "bbb", "Names": ["galley-p-default-api"], "State": "running", "Pid": 11, "Labels": { "io.galley.project": "p", "io.galley.instance": "default" } },
            { "Id": "ccc", "Names": ["galley_q_default_x"], "State": "running", "Pid": 12, "Labels": { "io.galley.project": "q", "io.galley.instance": "default" } },
            { "Id": "ddd", "Names": ["galley_p_other_web"], "State": "exited", "Pid": 0, "Labels": { "io.galley.project": "p", "io.galley.instance": "other" } },
        ]);
        r.answer("podman ps", Output { code: Some(0), stdout: ps.to_string().into_bytes(), ..Output::default() });
        // By name: web is the listed one; a same-named container of no listing is not audited.
        let by_name = serde_json::json!([
            { "Id": "aaa", "Name": "galley_p_default_web", "Config": { "Labels": { "io.galley.sandbox": "web" } } },
            { "Id": "zzz", "Name": "galley_p_default_db", "Config": { "Labels": { "io.galley.sandbox": "db" } } },
        ]);
        r.answer(
            "podman container inspect galley_p_default_web",
            Output { code: Some(125), stdout: by_name.to_string().into_bytes(), ..Output::default() },
        );
        let by_id = serde_json::json!([{ "Id": "bbb", "Name": "galley-p-default-api", "Config": { "Labels": { "io.galley.sandbox": "api" } } }]);
        r.answer("podman container inspect bbb", Output { code: Some(0), stdout: by_id.to_string().into_bytes(), ..Output::default() });
        let expected = ["galley_p_default_web".to_owned(), "galley_p_default_db".to_owned()];
        let (found, running) = observe(&r, "p", "default", &expected).unwrap();
        assert_eq!(found.iter().map(|o| o.sandbox.as_str()).collect::<Vec<_>>(), ["api", "web"]);
        assert_eq!(running.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["galley_p_default_web", "galley-p-default-api", "galley_q_default_x"]);
        let mut calls = r.commands();
        calls.sort();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[0], "podman container inspect bbb");
        assert_eq!(calls[1], "podman container inspect galley_p_default_web galley_p_default_db");
        assert!(calls[2].starts_with("podman ps --no-trunc --format json --filter=label=io.galley.project"), "{}", calls[2]);
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

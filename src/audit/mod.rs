//! `galley verify`: audit live sandboxes from the host against their manifests.
//!
//! Two sources, neither of which code inside the sandbox can rewrite: podman's record of the
//! container (one batched `podman inspect`, checked in [`checks`]) and the kernel's view of every
//! process in it through the host's /proc ([`kernel`]). Every check is named after its CIS
//! Docker Benchmark item where one exists; every finding is reported, none stops the audit.

pub mod checks;
pub mod image;
pub mod kernel;
pub mod report;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::exec::{Cmd, ExecError, Runner};
use crate::manifest::{self, ManifestError, SandboxManifest};
use crate::model::{Project, Secret};

/// Container labels the runner sets.
pub const LABEL_PROJECT: &str = "io.galley.project";
pub const LABEL_INSTANCE: &str = "io.galley.instance";
pub const LABEL_SANDBOX: &str = "io.galley.sandbox";
pub const LABEL_MANIFEST: &str = "io.galley.manifest";
/// Optional label pinning the image digest the manifest was resolved with, used until the lock
/// records it.
pub const LABEL_IMAGE: &str = "io.galley.image";

/// The instance `galley verify` audits unless told otherwise.
pub const DEFAULT_INSTANCE: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One check: its id (CIS Docker Benchmark item when one exists), title and remedy.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub fix: &'static str,
}

macro_rules! checks {
    ($($name:ident = $id:literal, $title:literal, $fix:literal;)*) => {
        $(pub const $name: &str = $id;)*
        /// Every check, in report order.
        pub const CHECKS: &[Check] = &[$(Check { id: $id, title: $title, fix: $fix }),*];
    };
}

checks! {
    IMAGE = "4.x image digest", "the container runs the image the lock pins", "run `galley apply` to recreate the sandbox from the pinned image";
    MANIFEST = "galley manifest", "the container was created from the current manifest", "run `galley apply` to recreate the sandbox from the current config";
    PRIVILEGED = "5.4 privileged", "the container is not privileged", "never start sandboxes with --privileged; recreate with `galley apply`";
    CAPABILITIES = "5.3 capabilities", "capabilities are exactly the declared ones", "drop ALL capabilities and add only those in `capabilities`; recreate with `galley apply`";
    NO_NEW_PRIVS = "5.25 no-new-privileges", "processes cannot gain privileges (no_new_privs)", "start with --security-opt no-new-privileges; recreate with `galley apply`";
    SECCOMP = "5.21 seccomp", "the declared seccomp profile is in force", "start with the manifest's seccomp profile; recreate with `galley apply`";
    READ_ONLY = "5.12 read-only root", "the root filesystem is mounted as declared (read-only)", "start with --read-only; writable places belong in `tmpfs` or `volumes`";
    USER = "4.1 user", "processes run as the declared non-root user", "start with --user set to the sandbox's `user`; recreate with `galley apply`";
    PID_NS = "5.15 pid namespace", "the pid namespace is not the host's", "do not start sandboxes with --pid host";
    IPC_NS = "5.16 ipc namespace", "the ipc namespace is not the host's", "do not start sandboxes with --ipc host";
    UTS_NS = "5.20 uts namespace", "the uts namespace is not the host's", "do not start sandboxes with --uts host";
    USER_NS = "5.30 user namespace", "the user namespace is not shared by request", "do not start sandboxes with --userns host";
    NETWORK = "5.9 network", "the sandbox is on exactly its instance's network, never the host's", "attach the sandbox only to galley-<project>-<instance> (or none); recreate with `galley apply`";
    DEVICES = "5.17 devices", "no host devices are passed in", "do not start sandboxes with --device";
    PORTS = "5.13 bind to host interface", "published ports and host addresses are exactly the declared ones", "publish only the declared `ports`, on their declared addresses";
    LISTENING = "5.8 listening ports", "nothing listens inside the sandbox but the declared ports", "stop the undeclared listener or declare the port in `ports`";
    MOUNTS = "5.5 host mounts", "mounts are exactly the declared ones: no host directory but the secrets", "mount only declared `volumes`, `tmpfs` and secrets; never a host path";
    RUNTIME_SOCKET = "5.31 runtime socket", "no container runtime socket is reachable", "never mount docker, podman or containerd sockets into a sandbox";
    MEMORY = "5.10 memory", "the memory limit is the declared one", "start with --memory set to `resources.memory`";
    CPU = "5.11 cpu", "the CPU quota is the declared one", "start with --cpus set to `resources.cpus`";
    PIDS = "5.28 pids limit", "the process limit is the declared one", "start with --pids-limit set to `resources.pids`";
    ULIMITS = "5.18 ulimits", "open-file and process ulimits are the declared ones", "start with --ulimit nofile=N:N and nproc=N:N as declared";
    SECRETS = "galley secret exposure", "no declared secret's value is visible in any process's environment or arguments", "deliver secrets only as files under /run/secrets, never through -e or argv";
    SETUID = "4.8 setuid files", "the root filesystem holds no setuid/setgid files, sudo or doas", "remove the setuid/setgid bits and privilege tools from the image";
}

/// The catalog entry of `id`.
pub fn check(id: &str) -> &'static Check {
    CHECKS.iter().find(|c| c.id == id).expect("every finding names a catalogued check")
}

/// One violation, with enough to fix it. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub sandbox: String,
    pub container: String,
    pub message: String,
    pub expected: String,
    pub observed: String,
    pub fix: String,
}

/// Collects the findings of one container.
#[derive(Debug)]
pub struct Sink<'a> {
    pub sandbox: &'a str,
    pub container: &'a str,
    pub findings: Vec<Finding>,
    /// Checks that ran (passed unless a finding names them).
    pub ran: Vec<&'static str>,
}

impl<'a> Sink<'a> {
    pub fn new(sandbox: &'a str, container: &'a str) -> Sink<'a> {
        Sink { sandbox, container, findings: Vec::new(), ran: Vec::new() }
    }

    /// Record that `check` ran.
    pub fn ran(&mut self, check: &'static str) {
        if !self.ran.contains(&check) {
            self.ran.push(check);
        }
    }

    pub fn fail(&mut self, check: &'static str, message: impl Into<String>, expected: impl Into<String>, observed: impl Into<String>) {
        self.push(check, Severity::Error, message.into(), expected.into(), observed.into());
    }

    pub fn warn(&mut self, check: &'static str, message: impl Into<String>, expected: impl Into<String>, observed: impl Into<String>) {
        self.push(check, Severity::Warning, message.into(), expected.into(), observed.into());
    }

    fn push(&mut self, check: &'static str, severity: Severity, message: String, expected: String, observed: String) {
        self.ran(check);
        let fix = self::check(check).fix.to_owned();
        let f = Finding { check, severity, sandbox: self.sandbox.into(), container: self.container.into(), message, expected, observed, fix };
        if !self.findings.contains(&f) {
            self.findings.push(f);
        }
    }
}

/// The audit of one container.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxReport {
    pub sandbox: String,
    pub container: String,
    /// Check id and whether it passed, in catalog order.
    pub checks: Vec<(&'static str, bool)>,
    pub findings: Vec<Finding>,
}

impl SandboxReport {
    pub fn from_sink(sink: Sink<'_>) -> SandboxReport {
        let failed = |id: &str| sink.findings.iter().any(|f| f.check == id && f.severity == Severity::Error);
        let checks = CHECKS.iter().filter(|c| sink.ran.contains(&c.id)).map(|c| (c.id, !failed(c.id))).collect();
        SandboxReport { sandbox: sink.sandbox.into(), container: sink.container.into(), checks, findings: sink.findings }
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }
}

/// Where the values of declared secrets come from, to look for them where they must not be.
pub trait SecretValues {
    fn value(&self, name: &str) -> Option<Zeroizing<Vec<u8>>>;
}

/// Secret values from the host environment (sources `{ env = "VAR" }`); others yield `None`.
#[derive(Debug)]
pub struct EnvSecrets<'a> {
    pub secrets: &'a BTreeMap<String, Secret>,
}

impl SecretValues for EnvSecrets<'_> {
    fn value(&self, name: &str) -> Option<Zeroizing<Vec<u8>>> {
        match self.secrets.get(name)? {
            Secret::Env(var) => std::env::var_os(var).map(|v| Zeroizing::new(v.into_encoded_bytes())),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("cannot read podman's answer: {0}")]
    Parse(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no such sandbox running: {0}")]
    NotRunning(String),
    #[error("no sandbox of project `{project}` is running in instance `{instance}`")]
    NothingRunning { project: String, instance: String },
    #[error("cannot scan image `{image}`: {message}")]
    Image { image: String, message: String },
}

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
    let ids: Vec<String> = ps.stdout_str().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = runner.check(&podman().args(["container", "inspect"]).args(&ids))?;
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
    let mut observed: Vec<Observed> = all
        .into_iter()
        .filter_map(|inspect| {
            let name = inspect.get("Name")?.as_str()?.trim_start_matches('/').to_owned();
            let sandbox = inspect.pointer("/Config/Labels")?.get(LABEL_SANDBOX)?.as_str()?.to_owned();
            Some(Observed { name, sandbox, inspect })
        })
        .collect();
    observed.sort_by(|a, b| (&a.sandbox, &a.name).cmp(&(&b.sandbox, &b.name)));
    Ok(observed)
}

/// The manifest each observed container must match. Until the lock records image digests, the
/// digest comes from the container's `io.galley.image` label, else from the image it runs.
pub fn desired(
    project: &Project,
    observed: &[Observed],
    lib_root: &Path,
) -> Result<BTreeMap<String, SandboxManifest>, AuditError> {
    let mut out = BTreeMap::new();
    for o in observed {
        if out.contains_key(&o.sandbox) || !project.sandboxes.contains_key(&o.sandbox) {
            continue;
        }
        let digest = o.label(LABEL_IMAGE).or(o.image_digest());
        out.insert(o.sandbox.clone(), manifest::resolve(project, &o.sandbox, digest, lib_root)?);
    }
    Ok(out)
}

/// What the audit knows beyond one container: the instance and its networks.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub instance: String,
    /// Whether each network the audited containers are on is internal (no route out).
    pub internal: BTreeMap<String, bool>,
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
            let nets: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| AuditError::Parse(e.to_string()))?;
            for n in nets {
                let name = n.get("name").or(n.get("Name")).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let flag = n.get("internal").or(n.get("Internal")).and_then(|v| v.as_bool()).unwrap_or(false);
                internal.insert(name, flag);
            }
        }
        Ok(Context { instance: instance.to_owned(), internal })
    }
}

/// Audit one observed container against its manifest, from podman's record and from the kernel.
pub fn audit(o: &Observed, m: &SandboxManifest, cx: &Context, secrets: &dyn SecretValues) -> SandboxReport {
    let mut sink = Sink::new(&o.sandbox, &o.name);
    checks::run(o, m, cx, secrets, &mut sink);
    if let Some(pid) = o.pid().filter(|_| o.running()) {
        kernel::run(pid, m, secrets, &mut sink);
    }
    SandboxReport::from_sink(sink)
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
        r.answer("podman container inspect", Output { code: Some(0), stdout: inspect.to_string().into_bytes(), ..Output::default() });
        let found = observe(&r, "p", "default").unwrap();
        assert_eq!(found.iter().map(|o| o.sandbox.as_str()).collect::<Vec<_>>(), ["api", "web"]);
        let calls = r.commands();
        assert_eq!(calls.len(), 2);
        assert!(calls[0].contains("--filter=label=io.galley.project=p") && calls[0].contains("--filter=label=io.galley.instance=default"));
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

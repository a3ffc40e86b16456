//! `galley verify`: audit live sandboxes from the host against their manifests.
//!
//! Two sources, neither of which code inside the sandbox can rewrite: podman's record of the
//! container (one batched `podman inspect`, checked in [`checks`]) and the kernel's view of every
//! process in it through the host's /proc ([`kernel`]). Every check is named after its CIS
//! Docker Benchmark item where one exists; every finding is reported, none stops the audit.

pub mod checks;
pub mod diag;
pub mod image;
pub mod kernel;
pub mod podman;
pub mod reach;
pub mod report;
pub mod userns;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::domain::labels::{LABEL_IMAGE, LABEL_INSTANCE, LABEL_MANIFEST, LABEL_PROJECT, LABEL_SANDBOX};
use crate::exec::{ExecError, Runner};
use crate::manifest::{self, ManifestError, SandboxManifest};
use crate::model::Project;
use crate::secrets::SecretValue;

pub use podman::{Context, Observed, observe, podman, select};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
    IMAGE = "galley image digest", "the container runs the image the lock pins", "run `galley apply` to recreate the sandbox from the pinned image";
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
    USER_MAP = "galley user namespace", "the sandbox's ids map to host ids of its own: not the host's, no account's, no other sandbox's", "recreate the sandbox with `galley apply`, which gives it a user namespace of its own (--userns=auto); `galley doctor` says which subordinate ids that needs";
    NETWORK = "5.9 network", "the sandbox is on exactly its instance's network, never the host's", "attach the sandbox only to galley_<project>_<instance> (and galley_<project>_<instance>_egress for 'egress; or none); recreate with `galley apply`";
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
    HOST_SIDE = "galley host side", "the host side of every network of the sandbox is closed (firewall)", "run `galley apply` as root to reinstall the network's chain and its INPUT jump";
    ROUTES = "galley no route out", "a sandbox without egress has no route out, and a 'none sandbox no interface but loopback", "recreate the sandbox with `galley apply` on its instance's --internal network";
    FORWARD = "galley forwarded ports", "each port of a sandbox without egress reaches the sandbox from its host address", "run `galley apply` to restart the port forwarder, and check the sandbox listens on the port";
}

/// The catalog entry of `id`.
pub fn check(id: &str) -> &'static Check {
    CHECKS.iter().find(|c| c.id == id).expect("every finding names a catalogued check")
}

/// One violation, with enough to fix it. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
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
    /// Checks that could not be made, each also failed with the reason.
    pub not_run: Vec<&'static str>,
    /// The findings recorded so far, to drop a repeated one in constant time.
    seen: HashSet<Finding>,
}

impl<'a> Sink<'a> {
    pub fn new(sandbox: &'a str, container: &'a str) -> Sink<'a> {
        Sink { sandbox, container, findings: Vec::new(), ran: Vec::new(), not_run: Vec::new(), seen: HashSet::new() }
    }

    /// Record that `check` ran.
    pub fn ran(&mut self, check: &'static str) {
        if !self.ran.contains(&check) {
            self.ran.push(check);
        }
    }

    pub fn fail(
        &mut self,
        check: &'static str,
        message: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) {
        self.push(check, Severity::Error, message.into(), expected.into(), observed.into());
    }

    /// Record that `check` could not be made, and why: a failure, never a pass.
    pub fn not_run(&mut self, check: &'static str, reason: impl Into<String>) {
        if !self.not_run.contains(&check) {
            self.not_run.push(check);
        }
        self.fail(check, format!("check not run: {}", reason.into()), "the check made", "not run");
    }

    pub fn warn(
        &mut self,
        check: &'static str,
        message: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) {
        self.push(check, Severity::Warning, message.into(), expected.into(), observed.into());
    }

    fn push(&mut self, check: &'static str, severity: Severity, message: String, expected: String, observed: String) {
        self.ran(check);
        let fix = self::check(check).fix.to_owned();
        let f = Finding {
            check,
            severity,
            sandbox: self.sandbox.into(),
            container: self.container.into(),
            message,
            expected,
            observed,
            fix,
        };
        if self.seen.insert(f.clone()) {
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
    /// Checks that could not be made (each also failed).
    pub not_run: Vec<&'static str>,
    pub findings: Vec<Finding>,
}

impl SandboxReport {
    pub fn from_sink(sink: Sink<'_>) -> SandboxReport {
        let failed = |id: &str| sink.findings.iter().any(|f| f.check == id && f.severity == Severity::Error);
        let checks = CHECKS.iter().filter(|c| sink.ran.contains(&c.id)).map(|c| (c.id, !failed(c.id))).collect();
        SandboxReport {
            sandbox: sink.sandbox.into(),
            container: sink.container.into(),
            checks,
            not_run: sink.not_run,
            findings: sink.findings,
        }
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }
}

/// The values apply delivered for a sandbox's declared secrets, to look for where they must not
/// be: read back from the files apply wrote on the host's tmpfs (never re-resolved from their
/// sources, which may be unset or rotated by now), each at least [`kernel::MIN_SECRET_LEN`]
/// bytes (shorter ones would match by chance). Read once per container, held as
/// [`SecretValue`]s; the secrets that could not be read or searched for are kept with the reason.
#[derive(Debug, Default)]
pub struct SecretValues {
    values: Vec<(String, SecretValue)>,
    /// Secrets with no delivered value to search for, and why.
    unread: Vec<(String, String)>,
    /// Secrets too short to search for.
    short: Vec<String>,
}

/// The largest delivered secret file read back; a secret source yields at most this much.
pub const MAX_DELIVERED_BYTES: u64 = crate::secrets::resolve::MAX_FILE_BYTES;

impl SecretValues {
    /// The delivered values of the secrets of `m`, from `dir`, the sandbox's directory of
    /// secret files on the host.
    pub fn delivered(m: &SandboxManifest, dir: &Path) -> SecretValues {
        let mut values = Vec::new();
        let mut unread = Vec::new();
        for name in m.secrets.keys() {
            let path = dir.join(name);
            match read_delivered(&path) {
                Ok(v) => values.push((name.clone(), v)),
                Err(why) => unread.push((name.clone(), format!("no delivered value of secret {name} to search for: {}: {why}", path.display()))),
            }
        }
        SecretValues { unread, ..SecretValues::new(values) }
    }

    pub fn new(values: Vec<(String, SecretValue)>) -> SecretValues {
        let (values, short): (Vec<_>, Vec<_>) = values.into_iter().partition(|(_, v)| v.len() >= kernel::MIN_SECRET_LEN);
        SecretValues { values, unread: Vec::new(), short: short.into_iter().map(|(n, _)| n).collect() }
    }

    /// The names of the secrets whose value occurs in `bytes`.
    pub fn found_in<'s>(&'s self, bytes: &'s [u8]) -> impl Iterator<Item = &'s str> + 's {
        self.values.iter().filter(|(_, v)| v.occurs_in(bytes)).map(|(name, _)| name.as_str())
    }

    /// Record in `sink` what the secret check cannot see: an unread secret makes it not run
    /// (a failure), a short one a warning.
    pub fn report_gaps(&self, sink: &mut Sink<'_>) {
        sink.ran(SECRETS);
        for (_, why) in &self.unread {
            sink.not_run(SECRETS, why.clone());
        }
        for name in &self.short {
            sink.warn(
                SECRETS,
                format!("secret {name} is shorter than {} bytes and is not searched for", kernel::MIN_SECRET_LEN),
                format!("at least {} bytes", kernel::MIN_SECRET_LEN),
                "shorter",
            );
        }
    }
}

/// One delivered secret file: a regular file, never through a symlink, at most
/// [`MAX_DELIVERED_BYTES`], not empty.
fn read_delivered(path: &Path) -> Result<SecretValue, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    // Sized up front so no copy of the value is left behind by a reallocation.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(meta.len().min(MAX_DELIVERED_BYTES) as usize + 1));
    file.take(MAX_DELIVERED_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    match bytes.len() as u64 {
        0 => Err("empty".into()),
        n if n > MAX_DELIVERED_BYTES => Err(format!("larger than {MAX_DELIVERED_BYTES} bytes")),
        _ => Ok(SecretValue::new(std::mem::take(&mut *bytes))),
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

/// The manifest each observed container must match without a lock. `galley apply` without a
/// lock creates a container from a manifest that pins no image digest: when the container's
/// manifest label is that one, it is the manifest (and the image check says nothing pinned the
/// image). Otherwise the digest comes from the container's `io.galley.image` label, else from the
/// image it runs.
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
        let unpinned = manifest::resolve(project, &o.sandbox, None, lib_root)?;
        let m = if o.label(LABEL_MANIFEST) == Some(unpinned.digest().to_string().as_str()) {
            unpinned
        } else {
            let mut pinned = unpinned;
            pinned.image.digest = o.label(LABEL_IMAGE).or(o.image_digest()).and_then(|d| d.parse().ok());
            pinned
        };
        out.insert(o.sandbox.clone(), m);
    }
    Ok(out)
}

/// Audit one observed container against its manifest, from podman's record and from the kernel;
/// `secrets` is the sandbox's directory of delivered secret files on the host.
pub fn audit(o: &Observed, m: &SandboxManifest, cx: &Context, secrets: &Path) -> SandboxReport {
    let mut sink = Sink::new(&o.sandbox, &o.name);
    let values = SecretValues::delivered(m, secrets);
    values.report_gaps(&mut sink);
    checks::run(o, m, cx, &values, &mut sink);
    let pid = o.pid().filter(|_| o.running());
    // The sandbox's sockets, read once for the listener and the forwarded-port checks.
    let listeners = pid.map(kernel::listeners);
    reach::run(o, m, cx, listeners.as_ref(), &mut sink);
    if let (Some(pid), Some(listeners)) = (pid, &listeners) {
        kernel::run(pid, m, &values, listeners, &mut sink);
        userns::check(pid, m, &cx.others, &mut sink);
        reach::kernel(pid, m, &mut sink);
    }
    SandboxReport::from_sink(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cost of recording `n` distinct findings, each reported twice (as a listener seen
    /// through two sockets is), in seconds.
    fn record(n: usize) -> (usize, f64) {
        let mut sink = Sink::new("app", "galley-p-default-app");
        let start = std::time::Instant::now();
        for _ in 0..2 {
            for i in 0..n {
                let shown = format!("0.0.0.0:{}/tcp", 1024 + i);
                sink.fail(LISTENING, format!("undeclared listener on {shown}"), "none", shown);
            }
        }
        (sink.findings.len(), start.elapsed().as_secs_f64())
    }

    #[test]
    fn twenty_thousand_listeners_are_deduplicated_in_linear_time() {
        let (small, t_small) = record(5_000);
        let (found, t) = record(20_000);
        eprintln!("findings dedup: 5,000 in {t_small:.3} s, 20,000 in {t:.3} s");
        assert_eq!((small, found), (5_000, 20_000));
        assert!(t < 1.0, "20,000 findings took {t:.3} s");
    }
}

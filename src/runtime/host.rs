//! Host facts the runner depends on: a usable OCI runtime, the cgroup mode and controllers, and
//! the hard resource limits a container can be given. Each problem comes with what to do.

use std::path::Path;

use super::{Result, RuntimeError};
use crate::domain::{Cpus, Memory};
use crate::manifest::SandboxManifest;
use crate::settings::OciRuntime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    V1,
    Hybrid,
    V2,
    Unknown,
}

impl CgroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid (v1 controllers)",
            CgroupMode::V2 => "v2",
            CgroupMode::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `--runtime` to pass to podman; `None` leaves podman's default.
    pub runtime: Option<String>,
    pub cgroup: CgroupMode,
    /// Controllers available for limits (`memory`, `pids`, `cpu`).
    pub controllers: Vec<String>,
    /// Hard RLIMIT_NOFILE and RLIMIT_NPROC of this process, which podman's runtime inherits
    /// (podman lowers its own RLIMIT_NPROC to `kernel.pid_max`).
    pub nofile_hard: u64,
    pub nproc_hard: u64,
    /// Whether this process may raise hard limits (CAP_SYS_RESOURCE).
    pub sys_resource: bool,
    pub root: bool,
}

/// Detect the host facts, with the OCI runtime the settings resolved.
pub fn detect(runtime: &OciRuntime) -> Result<HostFacts> {
    Ok(HostFacts { runtime: runtime_to_use(runtime)?, ..system() })
}

/// The `--runtime` to pass to podman (`None`: its default), or the error of [`oci_runtime`].
pub fn runtime_to_use(runtime: &OciRuntime) -> Result<Option<String>> {
    runtime.usable().map(|r| r.map(str::to_owned)).map_err(|(message, help)| RuntimeError::Host {
        sandbox: "*".into(),
        message: message.to_owned(),
        help: help.to_owned(),
    })
}

/// The settings' view of [`oci_runtime`]: the one detection, for podman and buildah alike.
pub fn detect_oci_runtime(env: Option<String>) -> OciRuntime {
    match oci_runtime(env, crate::exec::available) {
        Ok(Some(r)) => OciRuntime::Named(r),
        Ok(None) => OciRuntime::ToolDefault,
        Err(RuntimeError::Host { message, help, .. }) => OciRuntime::Unusable { message, help },
        Err(e) => OciRuntime::Unusable { help: e.help().unwrap_or_default(), message: e.to_string() },
    }
}

/// The host facts but the OCI runtime (left as podman's default).
pub fn system() -> HostFacts {
    let cgroup = cgroup_mode(Path::new("/sys/fs/cgroup"));
    HostFacts {
        runtime: None,
        cgroup,
        controllers: controllers(Path::new("/sys/fs/cgroup"), cgroup),
        nofile_hard: hard_limit(libc::RLIMIT_NOFILE),
        nproc_hard: hard_limit(libc::RLIMIT_NPROC).min(pid_max()),
        sys_resource: has_cap(24),
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
    }
}

/// `GALLEY_OCI_RUNTIME` when set, else `runc` when installed (crun fails on some hosts), else
/// podman's default when `crun` is installed.
pub fn oci_runtime(env: Option<String>, available: impl Fn(&str) -> bool) -> Result<Option<String>> {
    let no_runtime = |message: String| RuntimeError::Host {
        sandbox: "*".into(),
        message,
        help: "install runc (apt-get install runc) or set GALLEY_OCI_RUNTIME to an installed OCI runtime".into(),
    };
    match env.filter(|v| !v.is_empty()) {
        Some(r) if available(&r) || Path::new(&r).is_absolute() && Path::new(&r).is_file() => Ok(Some(r)),
        Some(r) => Err(no_runtime(format!("GALLEY_OCI_RUNTIME names `{r}`, which is not installed"))),
        None if available("runc") => Ok(Some("runc".into())),
        None if available("crun") => Ok(None),
        None => Err(no_runtime("no usable OCI runtime: neither runc nor crun is on PATH".into())),
    }
}

fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: rl is a valid, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut rl) } != 0 || rl.rlim_max == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    rl.rlim_max
}

fn pid_max() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(u64::MAX)
}

fn has_cap(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

pub fn cgroup_mode(root: &Path) -> CgroupMode {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    match statfs_type(root) {
        Some(CGROUP2_SUPER_MAGIC) => CgroupMode::V2,
        Some(TMPFS_MAGIC) if root.join("unified").is_dir() => CgroupMode::Hybrid,
        Some(TMPFS_MAGIC) => CgroupMode::V1,
        _ => CgroupMode::Unknown,
    }
}

/// The `f_type` of the file system holding `path`.
pub fn statfs_type(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid, writable statfs.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn controllers(root: &Path, mode: CgroupMode) -> Vec<String> {
    let wanted = ["memory", "pids", "cpu"];
    match mode {
        CgroupMode::V2 => std::fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| wanted.contains(c))
            .map(str::to_owned)
            .collect(),
        _ => wanted.iter().filter(|c| root.join(c).is_dir()).map(|c| (*c).to_owned()).collect(),
    }
}

/// The RLIMIT_NOFILE and RLIMIT_NPROC a sandbox gets: the declared values, else the host's hard
/// limits (podman's own defaults exceed them on hosts without CAP_SYS_RESOURCE).
pub fn ulimits(m: &SandboxManifest, facts: &HostFacts) -> (u64, u64) {
    (m.resources.nofile.unwrap_or(facts.nofile_hard), m.resources.nproc.unwrap_or(facts.nproc_hard))
}

/// Refuse a sandbox this host cannot run as declared, saying what to do.
pub fn check(m: &SandboxManifest, facts: &HostFacts) -> Result<()> {
    let fail = |message: String, help: String| RuntimeError::Host { sandbox: m.sandbox.clone(), message, help };
    if !facts.sys_resource {
        let limits = [("nofile", m.resources.nofile, facts.nofile_hard, "-Hn", "LimitNOFILE"), ("nproc", m.resources.nproc, facts.nproc_hard, "-Hu", "LimitNPROC")];
        for (field, declared, hard, flag, unit) in limits {
            if let Some(n) = declared.filter(|n| *n > hard) {
                return Err(fail(
                    format!("resources.{field} = {n} exceeds the host's hard limit {hard}, and galley lacks CAP_SYS_RESOURCE to raise it"),
                    format!("lower resources.{field} to at most {hard}, or raise the hard limit of the shell or service running galley (ulimit {flag}, systemd {unit}=)"),
                ));
            }
        }
    }
    // Ports of a sandbox without egress go through galley's forwarder, which has its limits.
    super::forward::check(m, facts.root).map_err(|(message, help)| fail(message, help))?;
    let r = &m.resources;
    let wants = [("memory", r.memory != Memory::Unlimited), ("pids", r.pids > 0), ("cpu", r.cpus != Cpus::Unlimited)];
    for (controller, declared) in wants {
        if !declared {
            continue;
        }
        if facts.cgroup != CgroupMode::V2 && !facts.root {
            return Err(fail(
                format!("the {controller} limit cannot be enforced: cgroups are {} and galley is not root", facts.cgroup.as_str()),
                "run galley as root, or boot the host with cgroups v2 (systemd.unified_cgroup_hierarchy=1) so rootless podman can set limits".into(),
            ));
        }
        if !facts.controllers.iter().any(|c| c == controller) {
            return Err(fail(
                format!("the {controller} limit cannot be enforced: the {controller} cgroup controller is not available (cgroups {})", facts.cgroup.as_str()),
                format!("enable the {controller} controller on the host, or remove the limit from the sandbox"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with podman's network backend `backend` for galley, and what to do: `None`
/// for netavark. CNI gives an `--internal` network no DNS, so sandboxes of an instance could not
/// find each other by name, and its port forwarding from a container that is also on an internal
/// network sends loopback connections out of the host's default route instead of to the
/// container.
pub fn backend_problem(backend: &str) -> Option<(String, String)> {
    (backend != "netavark").then(|| {
        (
            format!(
                "podman uses the '{backend}' network backend; galley's instance networks need netavark (DNS on internal networks, port forwarding kept on the host)"
            ),
            "install netavark and aardvark-dns and set network_backend = \"netavark\" under [network] in containers.conf (podman then no longer lists its CNI networks)".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_prefers_the_setting_then_runc() {
        let only = |names: &'static [&'static str]| move |p: &str| names.contains(&p);
        assert_eq!(oci_runtime(Some("crun".into()), only(&["crun", "runc"])).unwrap().as_deref(), Some("crun"));
        assert_eq!(oci_runtime(None, only(&["crun", "runc"])).unwrap().as_deref(), Some("runc"));
        assert_eq!(oci_runtime(None, only(&["crun"])).unwrap(), None);
        assert!(oci_runtime(None, only(&[])).unwrap_err().help().unwrap().contains("runc"));
        assert!(oci_runtime(Some("nope".into()), only(&["runc"])).is_err());
    }

    #[test]
    fn this_host_reports_a_cgroup_mode_and_limits() {
        let facts = system();
        assert!(facts.nofile_hard > 0);
        assert_ne!(facts.cgroup, CgroupMode::Unknown);
    }
}

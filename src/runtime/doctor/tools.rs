//! Checks of the programs galley runs: podman, the OCI runtime (by starting a container), the
//! network pieces podman needs for a networked sandbox (netavark, the iptables it calls,
//! aardvark-dns, the netavark backend), and buildah.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use crate::exec::{Cmd, ExecError, Runner};
use crate::runtime::host::{self, HostFacts};
use crate::runtime::podman::Podman;
use crate::runtime::RuntimeError;

pub(super) const OCI_RUNTIME: &str = "oci-runtime";
pub(super) const OCI_RUNTIME_TITLE: &str = "the OCI runtime starts a container";

/// What podman says when netavark is not in its helper directories (then no podman command runs).
const NETAVARK_MISSING: &str = "could not find \"netavark\"";
const NO_NETAVARK: &str = "podman cannot start without netavark (see the netavark check)";

/// How long starting the probe container may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where podman looks for netavark and aardvark-dns when containers.conf does not say.
const DEFAULT_HELPER_DIRS: &[&str] = &["/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"];

/// `program --version`'s first line, or why it cannot run.
fn version(runner: &dyn Runner, cmd: Cmd) -> Result<String, ExecError> {
    let out = runner.check(&cmd.arg("--version").timeout(Duration::from_secs(30)))?;
    Ok(out.stdout_str().lines().next().unwrap_or_default().trim().to_owned())
}

fn missing(id: &str, title: &str, e: &ExecError, package: &str) -> Check {
    let help = match e {
        ExecError::NotFound { .. } => format!("install {package} (apt-get install {package}) and make sure it is on PATH"),
        _ => format!("run `{package} --version` to see what fails, and reinstall {package} (apt-get install --reinstall {package})"),
    };
    Check::fail(id, title, e.to_string(), help)
}

/// The id and title of [`podman`]'s check.
pub(super) fn podman_title() -> (&'static str, &'static str) {
    ("podman", "podman is installed")
}

pub fn podman(podman: &Podman<'_>) -> Check {
    let title = podman_title().1;
    match version(podman.runner, Cmd::new("podman")) {
        Ok(v) => Check::pass("podman", title, v),
        Err(e) => missing("podman", title, &e, "podman"),
    }
}

pub fn buildah(runner: &dyn Runner) -> Check {
    let title = "buildah is installed (RUN steps)";
    match version(runner, Cmd::new("buildah")) {
        Ok(v) => Check::pass("buildah", title, v),
        Err(e) => missing("buildah", title, &e, "buildah"),
    }
}

/// Start a container with podman's OCI runtime: no image (the root is a temporary directory
/// with the host's /usr mounted read-only), no network, read-only, the host's hard limits.
pub fn oci_runtime(podman: &Podman<'_>, facts: &HostFacts) -> Check {
    let runtime = podman.runtime.clone().unwrap_or_else(|| "podman's default runtime".into());
    let fail = |detail: String| {
        Check::fail(
            OCI_RUNTIME,
            OCI_RUNTIME_TITLE,
            detail,
            "install runc (apt-get install runc) or set GALLEY_OCI_RUNTIME to an OCI runtime that works on this host",
        )
    };
    let Some(truth) = ["/usr/bin/true", "/bin/true"].into_iter().find(|p| Path::new(p).is_file()) else {
        return Check::skip(OCI_RUNTIME, OCI_RUNTIME_TITLE, "no `true` program under /usr/bin or /bin to start");
    };
    let root = match probe_root() {
        Ok(r) => r,
        Err(e) => return Check::skip(OCI_RUNTIME, OCI_RUNTIME_TITLE, format!("cannot prepare a root for the probe container: {e}")),
    };
    let name = format!("galley-doctor-{}", std::process::id());
    let mut cmd = podman.cmd().args(["run", "--rm", "--name", name.as_str(), "--network", "none", "--read-only", "--read-only-tmpfs=false"]);
    for (flag, limit) in [("nofile", facts.nofile_hard), ("nproc", facts.nproc_hard)] {
        if limit != u64::MAX {
            cmd = cmd.args(["--ulimit".to_owned(), format!("{flag}={limit}:{limit}")]);
        }
    }
    for dir in host_dirs() {
        cmd = cmd.args(["--volume".to_owned(), format!("{0}:{0}:ro", dir.display())]);
    }
    let cmd = cmd.arg("--rootfs").arg(root.path()).arg(truth).timeout(PROBE_TIMEOUT);
    match podman.runner.run(&cmd) {
        Ok(out) if out.success() => Check::pass(OCI_RUNTIME, OCI_RUNTIME_TITLE, format!("{runtime} started a container")),
        Ok(out) if out.timed_out => {
            let _ = podman.runner.run(&podman.cmd().args(["rm", "--force", "--time", "0", name.as_str()]));
            fail(format!("{runtime} did not start a container within {}s", PROBE_TIMEOUT.as_secs()))
        }
        Ok(out) if out.stderr_str().contains(NETAVARK_MISSING) => Check::skip(OCI_RUNTIME, OCI_RUNTIME_TITLE, NO_NETAVARK),
        Ok(out) => {
            let stderr = out.stderr_str();
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            fail(format!("{runtime} cannot start a container: {}", last.trim().trim_start_matches("Error: ")))
        }
        Err(e) => fail(format!("{runtime} cannot start a container: {e}")),
    }
}

/// The host's top-level program directories: a symlink (`/bin -> usr/bin`) is copied into the
/// probe's root, a directory is mounted read-only.
fn host_dirs() -> Vec<PathBuf> {
    ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"]
        .iter()
        .map(|d| Path::new("/").join(d))
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
        .collect()
}

fn probe_root() -> std::io::Result<tempfile::TempDir> {
    let root = tempfile::Builder::new().prefix("galley-doctor-").tempdir()?;
    for d in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(d);
        if let Ok(target) = std::fs::read_link(&host) {
            std::os::unix::fs::symlink(target, root.path().join(d))?;
        }
    }
    Ok(root)
}

/// The checks a networked sandbox needs: netavark where podman looks for it, the iptables it
/// runs on PATH, aardvark-dns, and podman on the netavark backend.
pub fn network(podman: &Podman<'_>) -> Vec<Check> {
    let dirs = helper_dirs();
    let shown = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    let find = |program: &str| dirs.iter().map(|d| d.join(program)).find(|p| p.is_file());
    let info = podman.network_backend();
    let podman_missing = matches!(info, Err(RuntimeError::Exec(ExecError::NotFound { .. })));
    let info = info.map_err(|e| e.to_string());
    let podman_lacks_netavark = info.as_ref().is_err_and(|e| e.contains(NETAVARK_MISSING));
    let helper_help = |package: &str| {
        format!("install {package} (apt-get install {package}), or set helper_binaries_dir under [engine] in containers.conf to the directory holding it")
    };
    let netavark_title = "netavark is installed where podman looks for it";
    let netavark = match find("netavark") {
        Some(p) if !podman_lacks_netavark => Check::pass("netavark", netavark_title, p.display().to_string()),
        _ => Check::fail("netavark", netavark_title, format!("netavark is not in podman's helper directories ({shown})"), helper_help("netavark")),
    };
    let firewall_title = "the firewall tool netavark runs is on PATH";
    let firewall = match crate::exec::find("iptables") {
        Some(p) => Check::pass("firewall", firewall_title, format!("iptables at {}", p.display())),
        None => Check::fail(
            "firewall",
            firewall_title,
            "iptables is not on PATH; netavark runs it to set up every network, and fails with `netavark: No such file or directory` without it",
            "install iptables (apt-get install iptables), or add the directory holding it to PATH",
        ),
    };
    let dns_title = "aardvark-dns is installed (names on instance networks)";
    let dns = match find("aardvark-dns") {
        Some(p) => Check::pass("aardvark-dns", dns_title, p.display().to_string()),
        None => Check::fail("aardvark-dns", dns_title, format!("aardvark-dns is not in podman's helper directories ({shown})"), helper_help("aardvark-dns")),
    };
    let backend_title = "podman's network backend is netavark";
    let backend = match &info {
        Ok(b) => match host::backend_problem(b) {
            None => Check::pass("network-backend", backend_title, b.clone()),
            Some((message, help)) => Check::fail("network-backend", backend_title, message, help),
        },
        Err(_) if podman_missing => Check::skip("network-backend", backend_title, "podman is not available (see the podman check)"),
        Err(_) if podman_lacks_netavark => Check::skip("network-backend", backend_title, NO_NETAVARK),
        Err(e) => Check::fail("network-backend", backend_title, e.clone(), "run `podman info` to see what fails, and fix podman's installation (apt-get install podman)"),
    };
    vec![netavark, firewall, dns, backend]
}

/// podman's helper directories: `helper_binaries_dir` under `[engine]` in the last containers.conf
/// that sets it (only `CONTAINERS_CONF` when that is set, as podman reads it), else podman's
/// default list.
pub fn helper_dirs() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut files = Vec::new();
    if let Some(conf) = env(crate::env_vars::CONTAINERS_CONF) {
        files.push(conf);
    } else {
        let mut dirs = vec![PathBuf::from("/usr/share/containers"), PathBuf::from("/etc/containers")];
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0
            && let Some(config) = env(crate::env_vars::XDG_CONFIG_HOME).or_else(|| env(crate::env_vars::HOME).map(|h| h.join(".config")))
        {
            dirs.push(config.join("containers"));
        }
        for dir in dirs {
            files.push(dir.join("containers.conf"));
            let mut extra: Vec<PathBuf> = std::fs::read_dir(dir.join("containers.conf.d"))
                .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect())
                .unwrap_or_default();
            extra.sort();
            files.extend(extra);
        }
    }
    let set = files.iter().rev().filter_map(|f| std::fs::read_to_string(f).ok()).filter_map(|text| parse_helper_dirs(&text)).next();
    set.unwrap_or_else(|| DEFAULT_HELPER_DIRS.iter().map(PathBuf::from).collect())
}

/// `helper_binaries_dir = [...]` under `[engine]` in containers.conf text (TOML), when set.
fn parse_helper_dirs(text: &str) -> Option<Vec<PathBuf>> {
    let mut section = String::new();
    let mut lines = text.lines().map(|l| l.split('#').next().unwrap_or("").trim());
    let mut found = None;
    while let Some(line) = lines.next() {
        if line.starts_with('[') && !line.contains('=') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            continue;
        }
        let Some(value) = line.strip_prefix("helper_binaries_dir").map(str::trim_start).and_then(|v| v.strip_prefix('=')) else {
            continue;
        };
        if section != "engine" {
            continue;
        }
        let mut array = value.to_owned();
        while !array.contains(']') {
            let Some(next) = lines.next() else { break };
            array.push_str(next);
        }
        let quoted: Vec<PathBuf> = array.split(['"', '\'']).skip(1).step_by(2).map(PathBuf::from).collect();
        found = Some(quoted);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_dirs_come_from_the_engine_section() {
        let text = "[network]\nhelper_binaries_dir = [\"/not/this\"]\n[engine]\n# helper_binaries_dir = [\"/commented\"]\nhelper_binaries_dir = [\n  \"/opt/podman\", # ours\n  '/usr/lib/podman',\n]\n";
        assert_eq!(parse_helper_dirs(text), Some(vec![PathBuf::from("/opt/podman"), PathBuf::from("/usr/lib/podman")]));
        assert_eq!(parse_helper_dirs("[engine]\nruntime = \"runc\"\n"), None);
        assert_eq!(parse_helper_dirs("[engine]\nhelper_binaries_dir=[\"/x\"]"), Some(vec![PathBuf::from("/x")]));
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let r = crate::exec::Recorder::default();
        let e = ExecError::NotFound { program: "buildah".into() };
        let c = missing("buildah", "t", &e, "buildah");
        assert_eq!(c.status, super::super::Status::Fail);
        assert!(c.help.unwrap().contains("apt-get install buildah"));
        r.answer("buildah --version", crate::exec::Output { code: Some(0), stdout: b"buildah version 1.28.2 (x)\n".to_vec(), ..Default::default() });
        assert_eq!(buildah(&r).detail, "buildah version 1.28.2 (x)");
    }
}

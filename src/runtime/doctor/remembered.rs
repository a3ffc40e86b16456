//! The host checks every start needs (podman, and the OCI runtime, which starts a container),
//! remembered between runs: a pass is kept under `GALLEY_HOME/cache/host/start-checks` with a
//! fingerprint of what it depends on, read without starting any process (the podman and runtime
//! binaries' identity, the containers.conf files, the kernel and its boot, the hard limits and
//! the user), and trusted for [`KEEP`] while the fingerprint is unchanged. A failure is never
//! remembered, so a broken host is re-checked, and explained, every time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{tools, Check, Status};
use crate::exec;
use crate::runtime::host::HostFacts;
use crate::runtime::podman::Podman;

/// How long a remembered pass is trusted while the host's fingerprint is unchanged.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
const FORMAT: &str = "galley start checks 1";

/// [`tools::podman`] and [`tools::oci_runtime`], from the remembered pass when the host has not
/// changed since it was made.
pub fn start_checks(podman: &Podman<'_>, facts: &HostFacts, home: &Path) -> Vec<Check> {
    let path = home.join("cache/host/start-checks");
    let print = fingerprint(podman, facts);
    if let Some(checks) = recall(&path, &print) {
        return checks;
    }
    let checks = vec![tools::podman(podman), tools::oci_runtime(podman, facts)];
    if checks.iter().all(|c| c.status == Status::Pass) {
        let mut text = format!("{FORMAT}\n{print}\n");
        for c in &checks {
            text.push_str(&c.detail.replace('\n', " "));
            text.push('\n');
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::fsutil::write_atomic(&path, text.as_bytes());
    }
    checks
}

fn recall(path: &Path, print: &str) -> Option<Vec<Check>> {
    let age = std::fs::metadata(path).ok()?.modified().ok()?;
    if SystemTime::now().duration_since(age).ok()? > KEEP {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != FORMAT || lines.next()? != print {
        return None;
    }
    let (podman, runtime) = (lines.next()?, lines.next()?);
    let podman_check = tools::podman_title();
    Some(vec![
        Check::pass(podman_check.0, podman_check.1, format!("{podman} (remembered)")),
        Check::pass(tools::OCI_RUNTIME, tools::OCI_RUNTIME_TITLE, format!("{runtime} (remembered)")),
    ])
}

/// What the two checks depend on, in one line, read without starting a process.
fn fingerprint(podman: &Podman<'_>, facts: &HostFacts) -> String {
    let stat = |p: &Path| {
        std::fs::metadata(p).map_or_else(|_| "-".to_owned(), |m| format!("{}:{}:{}:{}", m.dev(), m.ino(), m.len(), m.mtime()))
    };
    let program = |name: &str| exec::find(name).map_or_else(|| format!("{name}=-"), |p| format!("{}={}", p.display(), stat(&p)));
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
    let runtime = podman.runtime.as_deref().map_or_else(|| "default".to_owned(), program);
    let conf = std::env::var(crate::env_vars::CONTAINERS_CONF).unwrap_or_default();
    let confs: Vec<String> = ["/etc/containers/containers.conf", "/usr/share/containers/containers.conf", conf.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| stat(Path::new(p)))
        .collect();
    // SAFETY: geteuid(2) has no failure mode and touches no memory.
    let uid = unsafe { libc::geteuid() };
    format!(
        "{} {runtime} conf={} kernel={} boot={} nofile={} nproc={} uid={uid}",
        program("podman"),
        confs.join(","),
        read("/proc/sys/kernel/osrelease"),
        read("/proc/sys/kernel/random/boot_id"),
        facts.nofile_hard,
        facts.nproc_hard
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};
    use crate::runtime::host::CgroupMode;

    fn facts(nofile_hard: u64) -> HostFacts {
        HostFacts {
            runtime: None,
            cgroup: CgroupMode::V2,
            controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
            nofile_hard,
            nproc_hard: 4096,
            sys_resource: false,
            root: true,
        }
    }

    #[test]
    fn a_pass_is_remembered_until_the_host_changes_and_a_failure_never_is() {
        let home = tempfile::tempdir().unwrap();
        let ok = Recorder::default();
        ok.answer("podman --version", Output { code: Some(0), stdout: b"podman version 4.3.1\n".to_vec(), ..Output::default() });
        let podman = Podman { runner: &ok, runtime: None };
        let first = start_checks(&podman, &facts(1024), home.path());
        assert!(first.iter().all(|c| c.status == Status::Pass), "{first:?}");
        let calls = ok.commands().len();
        assert!(calls >= 2 && ok.commands().iter().any(|c| c.contains(" run --rm ")), "{:?}", ok.commands());
        // The same host: no process at all, the same verdict.
        let again = start_checks(&podman, &facts(1024), home.path());
        assert_eq!(ok.commands().len(), calls, "nothing runs: {:?}", ok.commands());
        assert_eq!(again.iter().map(|c| (&c.id, c.status)).collect::<Vec<_>>(), first.iter().map(|c| (&c.id, c.status)).collect::<Vec<_>>());
        assert!(again[0].detail.contains("podman version 4.3.1") && again[1].detail.ends_with("(remembered)"), "{again:?}");
        // Another hard limit is another host: checked again.
        start_checks(&podman, &facts(2048), home.path());
        assert!(ok.commands().len() > calls, "a changed fingerprint is checked again");
        // A failing runtime is not remembered: checked, and failing, every time.
        let home = tempfile::tempdir().unwrap();
        let bad = Recorder::default();
        bad.answer("podman run", Output { code: Some(125), stderr: b"Error: runc: not found".to_vec(), ..Output::default() });
        let podman = Podman { runner: &bad, runtime: None };
        for _ in 0..2 {
            let checks = start_checks(&podman, &facts(1024), home.path());
            assert_eq!(checks[1].status, Status::Fail, "{checks:?}");
        }
        assert_eq!(bad.commands().iter().filter(|c| c.contains(" run --rm ")).count(), 2);
        assert!(!home.path().join("cache/host/start-checks").exists());
    }
}

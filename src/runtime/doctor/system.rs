//! Checks of the host itself, from the facts in [`crate::runtime::host`]: cgroups and their
//! controllers, hard resource limits, subordinate ids and user namespaces for rootless builds
//! and for the sandboxes' own user namespaces, and GALLEY_HOME (writable, with room).

use std::path::Path;

use super::Check;
use crate::runtime::host::{CgroupMode, HostFacts};
use crate::runtime::userns;

/// Below this much free space in GALLEY_HOME the `home` check fails: a base image and its
/// unpacked RUN step need a few hundred MiB.
pub const MIN_FREE_BYTES: u64 = 512 * 1024 * 1024;

/// Hard limits below these cannot run a sandbox with galley's own defaults.
const MIN_NOFILE: u64 = 256;
const MIN_NPROC: u64 = 64;

pub fn cgroups(facts: &HostFacts) -> Check {
    let title = "cgroups offer the memory, pids and cpu controllers";
    let missing: Vec<&str> = ["memory", "pids", "cpu"].into_iter().filter(|c| !facts.controllers.iter().any(|h| h == c)).collect();
    let detail = format!("cgroups {} (controllers: {})", facts.cgroup.as_str(), facts.controllers.join(", "));
    if facts.cgroup == CgroupMode::Unknown {
        return Check::fail("cgroups", title, "no cgroup file system at /sys/fs/cgroup", "mount cgroups (systemd does this at boot), or run galley on a host with cgroups v2");
    }
    if !missing.is_empty() {
        return Check::fail(
            "cgroups",
            title,
            format!("{detail}; missing: {}", missing.join(", ")),
            "enable the missing controllers (cgroups v2: systemd.unified_cgroup_hierarchy=1 on the kernel command line and Delegate=yes for rootless), or remove those limits from the sandboxes",
        );
    }
    if facts.cgroup != CgroupMode::V2 && !facts.root {
        return Check::fail(
            "cgroups",
            title,
            format!("{detail}; rootless podman cannot set limits without cgroups v2"),
            "run galley as root, or boot the host with cgroups v2 (systemd.unified_cgroup_hierarchy=1)",
        );
    }
    Check::pass("cgroups", title, detail)
}

pub fn rlimits(facts: &HostFacts) -> Check {
    let title = "hard resource limits a sandbox can be given";
    let shown = |n: u64| if n == u64::MAX { "unlimited".to_owned() } else { n.to_string() };
    let detail = format!(
        "hard nofile {}, nproc {}; {}",
        shown(facts.nofile_hard),
        shown(facts.nproc_hard),
        if facts.sys_resource { "CAP_SYS_RESOURCE (may raise them)" } else { "no CAP_SYS_RESOURCE (sandboxes get at most these)" }
    );
    if !facts.sys_resource && (facts.nofile_hard < MIN_NOFILE || facts.nproc_hard < MIN_NPROC) {
        return Check::fail(
            "rlimits",
            title,
            detail,
            format!("raise the hard limits of the shell or service running galley to at least nofile {MIN_NOFILE} and nproc {MIN_NPROC} (ulimit -Hn / -Hu, systemd LimitNOFILE= / LimitNPROC=)"),
        );
    }
    Check::pass("rlimits", title, detail)
}

/// Subordinate uid and gid ranges of the invoking user, which rootless buildah maps.
pub fn subids(facts: &HostFacts) -> Check {
    let title = "subordinate ids for rootless builds";
    if facts.root {
        return Check::skip("subids", title, "galley runs as root: builds are rootful and map no subordinate ids");
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = user_name(uid).unwrap_or_else(|| uid.to_string());
    let has_range = |file: &str| subordinate_count(file, &[&name, &uid.to_string()]) > 0;
    let missing: Vec<&str> = ["/etc/subuid", "/etc/subgid"].into_iter().filter(|f| !has_range(f)).collect();
    if missing.is_empty() {
        Check::pass("subids", title, format!("{name} has ranges in /etc/subuid and /etc/subgid"))
    } else {
        Check::fail(
            "subids",
            title,
            format!("{name} has no range in {}", missing.join(" and ")),
            format!("add one as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name} (package uidmap for newuidmap)"),
        )
    }
}

/// How many subordinate ids `file` (`/etc/subuid` or `/etc/subgid`) gives any of `who`.
fn subordinate_count(file: impl AsRef<Path>, who: &[&str]) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (owner, count) = (f.next()?, f.nth(1)?.trim().parse::<u64>().ok()?);
            who.contains(&owner).then_some(count)
        })
        .sum()
}

pub const SANDBOX_IDS: &str = "sandbox-ids";

/// Subordinate ids for the sandboxes' own user namespaces (`--userns=auto`): rootful podman
/// takes them from [`userns::SUBID_USER`]'s ranges, rootless podman from the invoking user's.
pub fn sandbox_ids(facts: &HostFacts) -> Check {
    sandbox_ids_in(facts, Path::new("/etc/subuid"), Path::new("/etc/subgid"))
}

fn sandbox_ids_in(facts: &HostFacts, subuid: &Path, subgid: &Path) -> Check {
    let title = "subordinate ids for each sandbox's own user namespace";
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let who = if facts.root { userns::SUBID_USER.to_owned() } else { user_name(uid).unwrap_or_else(|| uid.to_string()) };
    let names = [who.as_str(), &uid.to_string()];
    let names: &[&str] = if facts.root { &names[..1] } else { &names };
    let (uids, gids) = (subordinate_count(subuid, names), subordinate_count(subgid, names));
    let size = u64::from(userns::AUTO_SIZE);
    let fits = uids.min(gids) / size;
    let detail = format!("{who} has {uids} ids in /etc/subuid and {gids} in /etc/subgid: room for {fits} sandboxes of {size} ids each");
    if fits > 0 {
        return Check::pass(SANDBOX_IDS, title, detail);
    }
    let help = if facts.root {
        let (start, count) = userns::SETUP_RANGE;
        format!(
            "every sandbox runs in a user namespace of its own, whose ids podman takes from the `{who}` entries; add them as root: echo {who}:{start}:{count} >> /etc/subuid; echo {who}:{start}:{count} >> /etc/subgid (scripts/setup.sh does this)"
        )
    } else {
        format!("every sandbox runs in a user namespace of its own, cut from your subordinate ids; add at least {size} as root: usermod --add-subuids 200000-330000 --add-subgids 200000-330000 {who}")
    };
    Check::fail(SANDBOX_IDS, title, detail, help)
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
    })
}

pub fn userns() -> Check {
    let title = "user namespaces are enabled (rootless builds)";
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let max = read("/proc/sys/user/max_user_namespaces");
    let unprivileged = read("/proc/sys/kernel/unprivileged_userns_clone");
    match (max, unprivileged) {
        (Some(0), _) => Check::fail(
            "userns",
            title,
            "user.max_user_namespaces is 0",
            "enable user namespaces: sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/ to keep it)",
        ),
        (_, Some(0)) => Check::fail(
            "userns",
            title,
            "kernel.unprivileged_userns_clone is 0",
            "allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/ to keep it), or build as root",
        ),
        (Some(n), u) => Check::pass(
            "userns",
            title,
            format!("user.max_user_namespaces {n}{}", u.map(|u| format!(", kernel.unprivileged_userns_clone {u}")).unwrap_or_default()),
        ),
        (None, _) => Check::skip("userns", title, "/proc/sys/user/max_user_namespaces cannot be read"),
    }
}

/// GALLEY_HOME exists (created if needed), takes a file, and has [`MIN_FREE_BYTES`] free.
pub fn home(home: &Path) -> Check {
    let title = "GALLEY_HOME is writable and has room";
    let help = format!("set GALLEY_HOME to a directory you can write, or fix the permissions of {}", home.display());
    let probe = fs_err::create_dir_all(home).and_then(|()| tempfile::Builder::new().prefix(".galley-doctor-").tempfile_in(home).map(drop));
    if let Err(e) = probe {
        return Check::fail("home", title, format!("{} is not writable: {e}", home.display()), help);
    }
    let Some(free) = free_bytes(home) else {
        return Check::skip("home", title, format!("{} is writable, but its free space cannot be read", home.display()));
    };
    let mib = |n: u64| n / (1024 * 1024);
    let detail = format!("{} is writable, {} MiB free", home.display(), mib(free));
    if free < MIN_FREE_BYTES {
        return Check::fail(
            "home",
            title,
            format!("{detail}, below the {} MiB galley needs", mib(MIN_FREE_BYTES)),
            format!("free space on the file system of {}, or set GALLEY_HOME to one with room", home.display()),
        );
    }
    Check::pass("home", title, detail)
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid, writable statvfs.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::doctor::Status;

    fn facts() -> HostFacts {
        HostFacts {
            runtime: None,
            cgroup: CgroupMode::V2,
            controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
            nofile_hard: 1024,
            nproc_hard: 4096,
            sys_resource: false,
            root: true,
        }
    }

    #[test]
    fn cgroups_fail_on_a_missing_controller_and_name_it() {
        assert_eq!(cgroups(&facts()).status, Status::Pass);
        let c = cgroups(&HostFacts { controllers: vec!["memory".into()], ..facts() });
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("missing: pids, cpu"), "{}", c.detail);
        let rootless_v1 = cgroups(&HostFacts { cgroup: CgroupMode::V1, root: false, ..facts() });
        assert_eq!(rootless_v1.status, Status::Fail);
    }

    #[test]
    fn absurdly_low_hard_limits_fail() {
        assert_eq!(rlimits(&facts()).status, Status::Pass);
        let low = rlimits(&HostFacts { nofile_hard: 16, ..facts() });
        assert_eq!(low.status, Status::Fail);
        assert!(low.help.unwrap().contains("ulimit -Hn"));
        assert_eq!(rlimits(&HostFacts { nofile_hard: 16, sys_resource: true, ..facts() }).status, Status::Pass);
    }

    #[test]
    fn sandbox_ids_need_a_range_for_the_containers_user_and_say_how_to_add_it() {
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = (dir.path().join("subuid"), dir.path().join("subgid"));
        let write = |text: &str| {
            std::fs::write(&uid, text).unwrap();
            std::fs::write(&gid, text).unwrap();
        };
        write("galley-rootless:100000:65536\n");
        let c = sandbox_ids_in(&facts(), &uid, &gid);
        assert_eq!(c.status, Status::Fail, "another user's range is not podman's: {}", c.detail);
        assert!(c.detail.contains("room for 0 sandboxes"), "{}", c.detail);
        assert!(c.help.unwrap().contains("echo containers:2147483647:2147483648 >> /etc/subuid"));
        write("containers:2147483647:65535\n");
        assert_eq!(sandbox_ids_in(&facts(), &uid, &gid).status, Status::Fail, "fewer ids than one sandbox needs");
        write("containers:2147483647:2147483648\n");
        let c = sandbox_ids_in(&facts(), &uid, &gid);
        assert_eq!(c.status, Status::Pass, "{}", c.detail);
        assert!(c.detail.contains("room for 32768 sandboxes"), "{}", c.detail);
        std::fs::write(&gid, "").unwrap();
        assert_eq!(sandbox_ids_in(&facts(), &uid, &gid).status, Status::Fail, "gids are needed too");
    }

    #[test]
    fn home_is_created_and_an_unwritable_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let c = home(&dir.path().join("new/home"));
        assert_ne!(c.status, Status::Fail, "{}", c.detail);
        assert!(dir.path().join("new/home").is_dir());
        assert_eq!(std::fs::read_dir(dir.path().join("new/home")).unwrap().count(), 0, "the probe file is removed");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let c = home(&file.join("home"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.help.unwrap().contains("GALLEY_HOME"));
    }
}

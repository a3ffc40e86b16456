//! Checks from the kernel's view, read through the host's /proc: every process of the container
//! (found through its cgroup and its pid namespace, never through names a process can rewrite),
//! its credentials, mounts, listening sockets, environment and arguments, and its root
//! filesystem.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::*;
use crate::domain::idmap::IDENTITY;
use crate::domain::{IdMap, Protocol, UserSpec};

/// Secret values shorter than this are not searched for: they would match by chance.
pub const MIN_SECRET_LEN: usize = 4;

/// Capability names by bit number.
#[rustfmt::skip]
pub const CAPS: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit mask of capability names (with or without `CAP_`); unknown names are ignored.
pub fn cap_mask(names: &[String]) -> u64 {
    names.iter().filter_map(|n| CAPS.iter().position(|c| *c == n.trim_start_matches("CAP_"))).fold(0, |m, b| m | 1 << b)
}

fn cap_names(mask: u64) -> String {
    let names: Vec<&str> =
        (0..64).filter(|b| mask & 1 << b != 0).map(|b| CAPS.get(b).copied().unwrap_or("?")).collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

fn proc(pid: u32, item: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{item}"))
}

fn ns(path: &Path) -> Option<PathBuf> {
    std::fs::read_link(path).ok()
}

/// Every process of the container whose init is `init`: the members of its cgroup, and, when
/// its pid namespace is its own, every process in that namespace.
pub fn processes(init: u32) -> BTreeSet<u32> {
    let mut pids: BTreeSet<u32> = [init].into();
    for dir in cgroup_dirs(init, "pids") {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
    }
    let own = ns(&proc(init, "ns/pid"));
    if own.is_some() && own != ns(Path::new("/proc/self/ns/pid")) {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if ns(&entry.path().join("ns/pid")) == own {
                pids.insert(pid);
            }
        }
    }
    pids
}

/// The host directories of the cgroup of `pid`: the unified one and, on cgroup v1, the one of
/// `controller`.
fn cgroup_dirs(pid: u32, controller: &str) -> Vec<PathBuf> {
    let cgroup = std::fs::read_to_string(proc(pid, "cgroup")).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match controllers {
            "" => dirs.extend([format!("/sys/fs/cgroup{path}"), format!("/sys/fs/cgroup/unified{path}")]),
            c if c.split(',').any(|c| c == controller) => dirs.push(format!("/sys/fs/cgroup/{controller}{path}")),
            _ => {}
        }
    }
    dirs.into_iter().map(PathBuf::from).filter(|d| d.is_dir()).collect()
}

/// On cgroup v1, the device allowlist must not open every device (as --privileged does).
fn devices(init: u32, sink: &mut Sink<'_>) {
    sink.ran(DEVICES);
    for dir in cgroup_dirs(init, "devices") {
        let Ok(text) = std::fs::read_to_string(dir.join("devices.list")) else { continue };
        if text.lines().any(|l| l.trim() == "a *:* rwm") {
            sink.fail(
                DEVICES,
                "the device cgroup allows every host device",
                "the default device allowlist",
                "a *:* rwm",
            );
        }
    }
}

/// The memory and process limits the kernel enforces on the container's cgroup (v1 or v2).
fn cgroup_limits(init: u32, m: &SandboxManifest, sink: &mut Sink<'_>) {
    let memory = m.resources.memory.bytes();
    let pids = (m.resources.pids > 0).then_some(u64::from(m.resources.pids));
    for (check, controller, files, want) in [
        (MEMORY, "memory", ["memory.max", "memory.limit_in_bytes"], memory),
        (PIDS, "pids", ["pids.max", "pids.max"], pids),
    ] {
        let read = cgroup_dirs(init, controller)
            .into_iter()
            .find_map(|d| files.iter().find_map(|f| std::fs::read_to_string(d.join(f)).ok()));
        let Some(text) = read else { continue };
        // cgroup v1 writes "no limit" as a huge page-aligned number, v2 as "max".
        let got = text.trim().parse::<u64>().ok().filter(|n| *n < 1 << 62);
        if got != want {
            let shown = got.map(|n| n.to_string()).unwrap_or_else(|| "unlimited".into());
            let wanted = want.map(|n| n.to_string()).unwrap_or_else(|| "unlimited".into());
            sink.fail(check, format!("the kernel enforces another {controller} limit"), wanted, shown);
        }
    }
}

/// The CPU quota the kernel enforces on the container's cgroup, in billionths of a CPU (`None`:
/// no quota), from cgroup v2's `cpu.max` or v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`;
/// `Err` when no cgroup file says.
pub fn cpu_quota(init: u32) -> Result<Option<i64>, String> {
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
    for dir in cgroup_dirs(init, "cpu") {
        let (quota, period) = match read(&dir, "cpu.max") {
            Some(max) => {
                let mut f = max.split_whitespace();
                (f.next().unwrap_or("").to_owned(), f.next().unwrap_or("").to_owned())
            }
            None => match (read(&dir, "cpu.cfs_quota_us"), read(&dir, "cpu.cfs_period_us")) {
                (Some(q), Some(p)) => (q.trim().to_owned(), p.trim().to_owned()),
                _ => continue,
            },
        };
        let period: i64 = period.parse().map_err(|_| format!("{}: unreadable period `{period}`", dir.display()))?;
        if quota == "max" || quota == "-1" {
            return Ok(None);
        }
        let quota: i64 = quota.parse().map_err(|_| format!("{}: unreadable quota `{quota}`", dir.display()))?;
        if period <= 0 {
            return Err(format!("{}: period {period}", dir.display()));
        }
        return Ok(Some((i128::from(quota) * 1_000_000_000 / i128::from(period)) as i64));
    }
    Err("no cpu.max or cpu.cfs_quota_us in the container's cgroup".into())
}

fn cpu_limit(init: u32, m: &SandboxManifest, sink: &mut Sink<'_>) {
    sink.ran(CPU);
    let want = (m.resources.cpus.cores() * 1e9).round() as i64;
    let want = (want > 0).then_some(want);
    let show = |n: Option<i64>| n.map(|n| format!("{} cpus", n as f64 / 1e9)).unwrap_or_else(|| "unlimited".into());
    match cpu_quota(init) {
        // A quota is a whole number of microseconds per period: allow its rounding.
        Ok(got) if got.zip(want).map_or(got == want, |(g, w)| (g - w).abs() <= 10_000) => {}
        Ok(got) => sink.fail(CPU, "the kernel enforces another CPU quota", show(want), show(got)),
        Err(why) => sink.not_run(CPU, format!("cannot read the kernel's CPU quota: {why}")),
    }
}

/// The tasks (threads) of process `pid`, its own id first when it is listed.
pub fn tasks(pid: u32) -> Vec<u32> {
    let entries = std::fs::read_dir(proc(pid, "task")).into_iter().flatten().flatten();
    let mut tids: Vec<u32> = entries.filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    tids.sort_by_key(|t| (*t != pid, *t));
    if tids.is_empty() {
        tids.push(pid);
    }
    tids
}

/// `item` (`environ`, `cmdline`) of process `pid`. Once its main thread has exited, /proc/PID/
/// shows both empty while the other tasks still run with them: then they are read through
/// /proc/PID/task/TID/.
pub fn process_bytes(pid: u32, item: &str) -> Option<Zeroizing<Vec<u8>>> {
    let main = std::fs::read(proc(pid, item)).ok().map(Zeroizing::new);
    if main.as_ref().is_some_and(|b| !b.is_empty()) {
        return main;
    }
    let from_task = tasks(pid).into_iter().filter(|t| *t != pid).find_map(|tid| {
        std::fs::read(proc(pid, &format!("task/{tid}/{item}"))).ok().map(Zeroizing::new).filter(|b| !b.is_empty())
    });
    from_task.or(main)
}

/// Run every kernel check of the container whose init process is `init`, whose sockets are
/// `listeners` ([`listeners`]).
pub fn run(init: u32, m: &SandboxManifest, secrets: &SecretValues, listeners: &Sockets, sink: &mut Sink<'_>) {
    namespaces(init, sink);
    devices(init, sink);
    cgroup_limits(init, m, sink);
    cpu_limit(init, m, sink);
    // /proc/PID/status shows the host's ids; the manifest names the ids inside.
    let map = |kind: &str| {
        std::fs::read_to_string(proc(init, kind)).ok().and_then(|t| IdMap::parse_proc(&t).ok()).unwrap_or(IdMap(vec![IDENTITY]))
    };
    let maps = (map("uid_map"), map("gid_map"));
    let pids = processes(init);
    for &pid in &pids {
        // A process that exited since it was listed has nothing left to check.
        if !proc(pid, "status").exists() {
            continue;
        }
        // Credentials are each task's own.
        for tid in tasks(pid) {
            let Ok(status) = std::fs::read_to_string(proc(pid, &format!("task/{tid}/status"))) else { continue };
            let who = if tid == pid { format!("pid {pid}") } else { format!("pid {pid} task {tid}") };
            credentials(&who, &status, m, &maps, sink);
        }
        for item in ["environ", "cmdline"] {
            let Some(bytes) = process_bytes(pid, item) else { continue };
            for name in secrets.found_in(&bytes) {
                sink.fail(
                    SECRETS,
                    format!("secret {name} visible in {item} of pid {pid}"),
                    "only in /run/secrets",
                    format!("in /proc/{pid}/{item}"),
                );
            }
        }
        limits(pid, m, sink);
    }
    mountinfo(init, m, sink);
    listening(listeners, m, sink);
    sink.ran(SETUID);
    match image::scan_root(&proc(init, "root"), image::Limits::default()) {
        Ok(found) => image::report(&found, sink),
        Err(e) => sink.fail(SETUID, format!("cannot scan the root filesystem: {e}"), "a scanned root", "unreadable"),
    }
}

fn namespaces(init: u32, sink: &mut Sink<'_>) {
    for (check, kind) in [(PID_NS, "pid"), (IPC_NS, "ipc"), (UTS_NS, "uts"), (NETWORK, "net")] {
        sink.ran(check);
        let theirs = ns(&proc(init, &format!("ns/{kind}")));
        let ours = ns(Path::new(&format!("/proc/self/ns/{kind}")));
        if theirs.is_none() || theirs == ours {
            let shown = theirs.map(|p| p.display().to_string()).unwrap_or_else(|| "unreadable".into());
            sink.fail(check, format!("the container shares the host's {kind} namespace"), "a private namespace", shown);
        }
    }
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// The id the kernel shows for a host id it cannot map into the namespace (`overflowuid`).
const OVERFLOW_ID: u32 = 65534;

/// Check one task's credentials; `maps` (uids, gids) turn the host ids `status` shows into the
/// container's own.
fn credentials(who: &str, status: &str, m: &SandboxManifest, maps: &(IdMap, IdMap), sink: &mut Sink<'_>) {
    let hex = |k: &str| field(status, k).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(u64::MAX);
    let allowed = cap_mask(&m.capabilities);
    if hex("CapBnd") != allowed {
        sink.fail(
            CAPABILITIES,
            format!("{who} has another bounding set than declared"),
            cap_names(allowed),
            cap_names(hex("CapBnd")),
        );
    }
    for key in ["CapEff", "CapPrm", "CapAmb", "CapInh"] {
        let got = hex(key);
        if got & !allowed != 0 {
            sink.fail(
                CAPABILITIES,
                format!("{who} holds undeclared capabilities ({key})"),
                cap_names(allowed),
                cap_names(got),
            );
        }
    }
    if field(status, "NoNewPrivs") != Some("1") {
        sink.fail(
            NO_NEW_PRIVS,
            format!("{who} may gain privileges"),
            "NoNewPrivs 1",
            format!("NoNewPrivs {}", field(status, "NoNewPrivs").unwrap_or("?")),
        );
    }
    let mode = field(status, "Seccomp").unwrap_or("?");
    if m.seccomp.digest.is_some() && mode != "2" {
        sink.fail(
            SECCOMP,
            format!("{who} runs without a seccomp filter"),
            "Seccomp 2 (filter)",
            format!("Seccomp {mode}"),
        );
    }
    let ids = |k: &str, map: &IdMap| -> Vec<u32> {
        let host = field(status, k).unwrap_or("").split_whitespace().filter_map(|v| v.parse().ok());
        host.map(|id| map.inside_id(id).unwrap_or(OVERFLOW_ID)).collect()
    };
    let (uids, gids) = (ids("Uid", &maps.0), ids("Gid", &maps.1));
    let (want_uid, want_gid) = declared_ids(&m.user);
    let bad_uid = match want_uid {
        Some(u) => uids.iter().any(|x| *x != u),
        None => uids.contains(&0),
    };
    let bad_gid = match want_gid {
        Some(g) => gids.iter().any(|x| *x != g),
        None => want_uid != Some(0) && gids.contains(&0),
    };
    if bad_uid || bad_gid || uids.is_empty() {
        sink.fail(
            USER,
            format!("{who} runs as another user than declared"),
            m.user.to_string(),
            format!("uid {uids:?} gid {gids:?}"),
        );
    }
    if want_gid != Some(0) && ids("Groups", &maps.1).contains(&0) {
        sink.fail(USER, format!("{who} is in the root group"), m.user.to_string(), format!("groups {:?}", ids("Groups", &maps.1)));
    }
}

/// The uid and gid the sandbox must run as, each `None` where the user names an account.
fn declared_ids(user: &UserSpec) -> (Option<u32>, Option<u32>) {
    (user.uid(), user.ids().map(|(_, gid)| gid))
}

fn limits(pid: u32, m: &SandboxManifest, sink: &mut Sink<'_>) {
    let Ok(text) = std::fs::read_to_string(proc(pid, "limits")) else { return };
    for (label, want) in [("Max open files", m.resources.nofile), ("Max processes", m.resources.nproc)] {
        let Some(want) = want else { continue };
        let Some(line) = text.lines().find(|l| l.starts_with(label)) else { continue };
        let nums: Vec<&str> = line[label.len()..].split_whitespace().take(2).collect();
        if nums != [want.to_string(), want.to_string()] {
            sink.fail(
                ULIMITS,
                format!("pid {pid}: {} is not the declared one", label.to_lowercase()),
                format!("{want} {want}"),
                nums.join(" "),
            );
        }
    }
}

fn mountinfo(init: u32, m: &SandboxManifest, sink: &mut Sink<'_>) {
    let text = std::fs::read_to_string(proc(init, "mountinfo")).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(root), Some(point), Some(opts)) = (f.get(3), f.get(4), f.get(5)) else { continue };
        if *point == "/" {
            let ro = opts.split(',').any(|o| o == "ro");
            if m.read_only && !ro {
                sink.fail(READ_ONLY, "the kernel mounts the root filesystem read-write", "ro", *opts);
            }
        }
        if checks::is_runtime_socket(root) || checks::is_runtime_socket(point) {
            sink.fail(
                RUNTIME_SOCKET,
                format!("a runtime socket is mounted at {point}"),
                "no runtime socket",
                format!("{root} -> {point}"),
            );
        }
    }
}

/// A socket listening in the container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub protocol: Protocol,
    pub address: String,
    pub port: u16,
}

/// The sockets of a sandbox's network namespace, or why they could not be read (the listener
/// checks are then not run, never passed).
pub type Sockets = Result<BTreeSet<Listener>, String>;

/// A `/proc/PID/net/{tcp,udp}[6]` table, read in as few `read` calls as possible: the kernel
/// walks its whole (host-wide) socket hash for every call, so `read_to_string`'s small first
/// reads made this the largest cost of a verify. One 256 KiB buffer takes a namespace's table
/// in one call, and a second sees its end.
fn read_net_table(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Listening TCP sockets and bound UDP sockets in the network namespace of `pid`: from the
/// kernel's socket diagnostics ([`super::diag`]), or where those cannot be asked (not root, a
/// kernel without them), from the namespace's `/proc` tables.
pub fn listeners(pid: u32) -> Sockets {
    super::diag::listeners(&proc(pid, "ns/net")).or_else(|diag| {
        listeners_from_proc(&proc(pid, ""))
            .map_err(|e| format!("the sockets of pid {pid} could not be read: socket diagnostics: {diag}; /proc: {e}"))
    })
}

/// Listening TCP sockets and bound UDP sockets in the network namespace of the process or task
/// whose `/proc` directory is `dir`, from its `net/{tcp,udp}[6]` tables. A kernel without IPv6
/// has no `tcp6` and `udp6` tables, and no such sockets.
pub fn listeners_from_proc(dir: &Path) -> Result<BTreeSet<Listener>, String> {
    let mut out = BTreeSet::new();
    for (file, protocol, state) in [
        ("tcp", Protocol::Tcp, "0A"),
        ("tcp6", Protocol::Tcp, "0A"),
        ("udp", Protocol::Udp, "07"),
        ("udp6", Protocol::Udp, "07"),
    ] {
        let path = dir.join("net").join(file);
        let text = match read_net_table(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.ends_with('6') && dir.join("net").exists() => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st)) = (f.get(1), f.get(3)) else { continue };
            let Some((addr, port)) = local.split_once(':') else { continue };
            let Ok(port) = u16::from_str_radix(port, 16) else { continue };
            if *st == state && port != 0 {
                out.insert(Listener { protocol, address: decode_addr(addr), port });
            }
        }
    }
    Ok(out)
}

/// /proc/net addresses are 32-bit words in host (little-endian) order.
fn decode_addr(hex: &str) -> String {
    let words: Vec<u32> =
        (0..hex.len() / 8).filter_map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()).collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).expect("16 bytes")).to_string(),
        _ => hex.to_owned(),
    }
}

fn listening(listeners: &Sockets, m: &SandboxManifest, sink: &mut Sink<'_>) {
    sink.ran(LISTENING);
    let listeners = match listeners {
        Ok(l) => l,
        Err(why) => return sink.not_run(LISTENING, why.clone()),
    };
    let declared: Vec<String> = m.ports.iter().map(|p| format!("{}/{}", p.container, p.protocol.as_str())).collect();
    for l in listeners {
        if !m.ports.iter().any(|p| p.container == l.port && p.protocol == l.protocol) {
            let shown = format!("{}:{}/{}", l.address, l.port, l.protocol.as_str());
            let want = if declared.is_empty() { "none".into() } else { declared.join(", ") };
            sink.fail(LISTENING, format!("undeclared listener on {shown}"), want, shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks_follow_the_kernel_numbering() {
        assert_eq!(cap_mask(&["NET_BIND_SERVICE".into()]), 1 << 10);
        assert_eq!(cap_mask(&["CAP_SYS_ADMIN".into(), "CHOWN".into()]), 1 << 21 | 1);
        assert_eq!(cap_names(1 << 21 | 1), "CHOWN, SYS_ADMIN");
        assert_eq!(cap_names(0), "none");
    }

    #[test]
    fn proc_net_addresses_decode() {
        assert_eq!(decode_addr("0100007F"), "127.0.0.1");
        assert_eq!(decode_addr("00000000000000000000000000000000"), "::");
        assert_eq!(decode_addr("00000000000000000000000001000000"), "::1");
    }

    #[test]
    fn status_fields_and_declared_ids_parse() {
        let status = "Name:\tsh\nUid:\t0\t0\t0\t0\nNoNewPrivs:\t1\n";
        assert_eq!(field(status, "NoNewPrivs"), Some("1"));
        assert_eq!(field(status, "Uid"), Some("0\t0\t0\t0"));
        let declared = |u: &str| declared_ids(&UserSpec::parse(u).unwrap());
        assert_eq!(declared("65534:65534"), (Some(65534), Some(65534)));
        assert_eq!(declared("agent"), (None, None));
    }

    #[test]
    fn a_thread_of_our_own_is_among_the_tasks_read() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let me = std::process::id();
        let found = tasks(me);
        assert_eq!(found.first(), Some(&me), "{found:?}");
        assert!(found.contains(&tid), "thread {tid} not among {found:?}");
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    extern "C" fn park(_: *mut libc::c_void) -> *mut libc::c_void {
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }

    /// The attack: a process whose main thread exits while another thread runs on shows an
    /// empty argv and environment at /proc/PID/, hiding a secret there from a check that reads
    /// only that.
    #[test]
    fn a_process_whose_main_thread_exited_still_has_its_argv_and_environ_read() {
        // SAFETY: the child only calls pthread_create and the exit system call.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            // SAFETY: a zeroed pthread_t is overwritten; `park` never returns.
            unsafe {
                let mut thread: libc::pthread_t = std::mem::zeroed();
                libc::pthread_create(&mut thread, std::ptr::null(), park, std::ptr::null_mut());
                libc::syscall(libc::SYS_exit, 0);
            }
            unreachable!();
        }
        let pid = child as u32;
        let zombie_leader = || {
            let status = std::fs::read_to_string(proc(pid, &format!("task/{pid}/status"))).unwrap_or_default();
            field(&status, "State").is_some_and(|s| s.starts_with('Z')) && tasks(pid).len() == 2
        };
        let start = std::time::Instant::now();
        while !zombie_leader() && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ready = zombie_leader();
        let direct = std::fs::read(proc(pid, "cmdline")).unwrap_or_default();
        let (cmdline, environ) = (process_bytes(pid, "cmdline"), process_bytes(pid, "environ"));
        // SAFETY: `child` is our own child; waiting reaps it.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert!(ready, "the child's main thread did not exit with its other thread running");
        assert!(direct.is_empty(), "/proc/PID/cmdline is not hidden here, so this test shows nothing");
        // The child is a copy of this process: the same argv and environment.
        assert_eq!(cmdline.as_deref().map(Vec::as_slice), Some(std::fs::read("/proc/self/cmdline").unwrap().as_slice()));
        assert_eq!(environ.as_deref().map(Vec::as_slice), Some(std::fs::read("/proc/self/environ").unwrap().as_slice()));
    }

    #[test]
    fn a_net_table_is_read_whole_however_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tcp");
        let text: String = (0..20_000).map(|i| format!("{i:>6}: 0100007F:1F90 00000000:0000 0A\n")).collect();
        assert!(text.len() > 256 << 10);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_net_table(&path).unwrap(), text);
        assert!(read_net_table(&dir.path().join("missing")).is_err());
    }

    /// A check that read nothing must not pass: sockets that cannot be read either way (here,
    /// of a pid above any pid_max, as of a process that has exited) fail the listener check as
    /// not run.
    #[test]
    fn sockets_that_cannot_be_read_leave_the_listener_check_not_run() {
        let sockets = listeners(u32::MAX);
        assert!(sockets.as_ref().is_err_and(|why| why.contains("socket diagnostics") && why.contains("/proc")), "{sockets:?}");
        let mut sink = Sink::new("app", "galley-p-default-app");
        listening(&sockets, &super::super::checks::tests::manifest(), &mut sink);
        assert_eq!(sink.not_run, [LISTENING]);
        assert!(sink.findings.iter().all(|f| f.check == LISTENING && f.severity == Severity::Error), "{:?}", sink.findings);
    }

    #[test]
    fn our_own_process_has_listeners_found_either_way() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        for found in [listeners(me).unwrap(), listeners_from_proc(&proc(me, "")).unwrap()] {
            assert!(
                found.iter().any(|x| x.port == port && x.address == "127.0.0.1" && x.protocol == Protocol::Tcp),
                "{found:?}"
            );
        }
    }
}

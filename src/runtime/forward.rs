//! Ports without egress: a sandbox on 'isolated or 'none publishes its TCP ports through a
//! forwarder galley runs on the host (`galley __forward`, detached), not through podman, whose
//! netavark cannot publish from an --internal network. The forwarder listens on the declared host
//! address and port and, for each connection, opens a socket inside the sandbox's own network
//! namespace (`setns` on a short-lived thread) to 127.0.0.1 and the container port, then copies
//! bytes both ways. The sandbox gets no route, no interface and no address it did not have.
//!
//! The namespace is found from the container's name at connect time (its init pid, checked by
//! start time), so the forwarder outlives `podman restart`, `stop`/`start` and a replacement
//! by `apply`. It is bounded: at most [`max_connections`] at once (more are closed at once), two
//! fixed [`BUFFER`]s per connection, and a connection on which nothing moved either way for
//! [`idle_timeout`] is closed, so idle clients cannot hold every slot. Each forwarder is recorded (pid, start time, address)
//! under `GALLEY_HOME/forward/<project>/<instance>/`, checked before it is signalled, and
//! stopped by `apply` (replacement, removal) and `destroy`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::naming::Instance;
use super::podman::Podman;
use super::{Result, RuntimeError};
use crate::domain::Protocol;
use crate::exec::Cmd;
use crate::manifest::SandboxManifest;
use crate::model::Network;

/// The hidden subcommand that runs one forwarder.
pub const SUBCOMMAND: &str = "__forward";
/// Bytes buffered per direction of one connection.
pub const BUFFER: usize = 64 * 1024;
/// Connections one forwarder carries at once unless `GALLEY_FORWARD_MAX_CONNECTIONS` says.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a carried connection may stay without a byte either way unless
/// `GALLEY_FORWARD_IDLE_SECONDS` says.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a connection into the sandbox may take to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection limit: `GALLEY_FORWARD_MAX_CONNECTIONS`, else [`DEFAULT_MAX_CONNECTIONS`].
pub fn max_connections() -> usize {
    std::env::var(crate::env_vars::GALLEY_FORWARD_MAX_CONNECTIONS)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS)
}

/// The idle limit: `GALLEY_FORWARD_IDLE_SECONDS` (a positive whole number), else
/// [`DEFAULT_IDLE_TIMEOUT`].
pub fn idle_timeout() -> Duration {
    std::env::var(crate::env_vars::GALLEY_FORWARD_IDLE_SECONDS)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_IDLE_TIMEOUT, Duration::from_secs)
}

/// When the last byte moved on one carried connection, either way.
struct Activity {
    start: Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { start: Instant::now(), last_ms: std::sync::atomic::AtomicU64::new(0) }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::SeqCst);
    }

    fn idle_for(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::SeqCst)))
    }
}

/// Whether `m`'s ports go through galley's forwarder: a sandbox without egress.
pub fn forwarded(m: &SandboxManifest) -> bool {
    m.network != Network::Egress && !m.ports.is_empty()
}

/// One running forwarder, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: u32,
    /// The process's start time (clock ticks after boot, `/proc/PID/stat` field 22).
    pub start: u64,
    pub listen: SocketAddr,
    pub port: u16,
}

fn dir(home: &Path, instance: &Instance) -> PathBuf {
    home.join("forward")
        .join(&instance.project)
        .join(&instance.instance)
}

fn record_path(home: &Path, instance: &Instance, sandbox: &str) -> PathBuf {
    dir(home, instance).join(format!("{sandbox}.json"))
}

fn read_records(path: &Path) -> Vec<Record> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The start time of process `pid`, when it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether `r` is still the forwarder it was recorded as (same pid, start time and command).
fn is_ours(r: &Record) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", r.pid)).unwrap_or_default();
    start_time(r.pid) == Some(r.start)
        && cmdline
            .split(|b| *b == 0)
            .any(|a| a == SUBCOMMAND.as_bytes())
}

/// Whether every port of `m` has its recorded forwarder running.
pub fn running(home: &Path, instance: &Instance, m: &SandboxManifest) -> bool {
    let records = read_records(&record_path(home, instance, &m.sandbox));
    m.ports.iter().all(|p| {
        records.iter().any(|r| {
            r.listen == SocketAddr::new(p.address, p.host) && r.port == p.container && is_ours(r)
        })
    })
}

/// Stop the forwarders of `sandbox` (those still running as recorded) and forget them.
pub fn stop(home: &Path, instance: &Instance, sandbox: &str) {
    let path = record_path(home, instance, sandbox);
    for r in read_records(&path).iter().filter(|r| is_ours(r)) {
        // SAFETY: kill(2) on a pid just checked to be our forwarder.
        unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while is_ours(r) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if is_ours(r) {
            // SAFETY: as above.
            unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("log"));
}

/// Stop every forwarder of the instance.
pub fn stop_all(home: &Path, instance: &Instance) {
    let d = dir(home, instance);
    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
        if let Some(sandbox) = e.file_name().to_str().and_then(|n| n.strip_suffix(".json")) {
            stop(home, instance, sandbox);
        }
    }
    let _ = std::fs::remove_dir(&d);
}

/// Refuse what the forwarder cannot carry: UDP ports, and forwarding without root (entering a
/// sandbox's network namespace needs CAP_SYS_ADMIN over it).
pub fn check(m: &SandboxManifest, root: bool) -> std::result::Result<(), (String, String)> {
    if !forwarded(m) {
        return Ok(());
    }
    if let Some(p) = m.ports.iter().find(|p| p.protocol != Protocol::Tcp) {
        return Err((
            format!(
                "port {}/{} of a sandbox with network '{} cannot be forwarded: galley forwards TCP only",
                p.container,
                p.protocol.as_str(),
                m.network.as_str()
            ),
            "set network = 'egress to publish a UDP port through podman, or serve it over TCP"
                .into(),
        ));
    }
    if !root {
        return Err((
            format!("the ports of a sandbox with network '{} are forwarded into its network namespace, which needs root", m.network.as_str()),
            "run galley as root (rootful podman), or set network = 'egress to publish the ports through podman".into(),
        ));
    }
    Ok(())
}

/// (Re)start the forwarders of `m`, one `exe __forward` per port, each ready (listening) before
/// this returns; on a failure the ones started are stopped again.
pub fn start(
    home: &Path,
    instance: &Instance,
    m: &SandboxManifest,
    exe: &Path,
    runtime: Option<&str>,
) -> Result<()> {
    stop(home, instance, &m.sandbox);
    if !forwarded(m) {
        return Ok(());
    }
    let d = dir(home, instance);
    fs_err::create_dir_all(&d).map_err(RuntimeError::io(&d))?;
    let path = record_path(home, instance, &m.sandbox);
    let mut records = Vec::new();
    for p in &m.ports {
        let listen = SocketAddr::new(p.address, p.host);
        let mut cmd = Cmd::new(exe).args([
            SUBCOMMAND,
            "--listen",
            &listen.to_string(),
            "--container",
            &instance.container(&m.sandbox),
        ]);
        cmd = cmd.args(["--port", &p.container.to_string()]);
        if let Some(r) = runtime {
            cmd = cmd.args(["--runtime", r]);
        }
        let started =
            crate::exec::start_detached(&cmd, &path.with_extension("log"), Duration::from_secs(10));
        let failed = |message: String| {
            RuntimeError::Other(format!(
                "sandbox `{}`: cannot forward {listen} to port {}: {message}",
                m.sandbox, p.container
            ))
        };
        let outcome = match started {
            Ok((pid, line)) if line == "ready" => start_time(pid)
                .map(|start| Record {
                    pid,
                    start,
                    listen,
                    port: p.container,
                })
                .ok_or_else(|| failed("the forwarder exited".into())),
            Ok((_, line)) => Err(failed(line)),
            Err(e) => Err(failed(e.to_string())),
        };
        match outcome {
            Ok(r) => {
                records.push(r);
                crate::fsutil::write_atomic(
                    &path,
                    &serde_json::to_vec(&records).expect("records serialize"),
                )
                .map_err(RuntimeError::io(&path))?;
            }
            Err(e) => {
                stop(home, instance, &m.sandbox);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The sandbox's network namespace, found by container name and kept while its init lives.
struct Target {
    container: String,
    cached: Mutex<Option<(u32, u64, Arc<File>)>>,
}

impl Target {
    fn netns(&self, podman: &Podman<'_>, fresh: bool) -> std::io::Result<Arc<File>> {
        let mut cached = self.cached.lock().expect("target lock");
        if let Some((pid, start, ns)) = cached.as_ref()
            && !fresh
            && start_time(*pid) == Some(*start)
        {
            return Ok(ns.clone());
        }
        *cached = None;
        let not_running = || {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("container {} is not running", self.container),
            )
        };
        let out = podman
            .runner
            .run(&podman.cmd().args([
                "container",
                "inspect",
                "--format",
                "{{.State.Pid}}",
                &self.container,
            ]))
            .map_err(std::io::Error::other)?;
        let pid: u32 = out
            .stdout_str()
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(not_running)?;
        let start = start_time(pid).ok_or_else(not_running)?;
        let ns = Arc::new(File::open(format!("/proc/{pid}/ns/net"))?);
        *cached = Some((pid, start, ns.clone()));
        Ok(ns)
    }
}

/// A TCP connection to 127.0.0.1:`port` made from inside the namespace `ns`: a thread enters it
/// and creates the socket, which stays in that namespace wherever it is used.
fn connect_in(ns: &File, port: u16) -> std::io::Result<TcpStream> {
    let fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on this thread only, with a namespace file kept open by `ns`.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), CONNECT_TIMEOUT)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
    })
}

/// Copy `from` to `to` through one fixed buffer until end of file or an error, then end `to`'s
/// writing side. When nothing moved either way for `idle`, both sockets are shut down, which ends
/// the other direction's copy too.
fn pump(mut from: &TcpStream, mut to: &TcpStream, activity: &Activity, idle: Duration) {
    let tick = idle.min(Duration::from_secs(1));
    let _ = (from.set_read_timeout(Some(tick)), to.set_write_timeout(Some(idle)));
    let mut buf = vec![0u8; BUFFER];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                activity.touch();
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
                activity.touch();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if activity.idle_for() >= idle {
                    let _ = (from.shutdown(Shutdown::Both), to.shutdown(Shutdown::Both));
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Run a forwarder: listen on `listen`, call `ready` with the outcome of listening and of finding
/// the sandbox, then carry connections into `container`'s port `port` until killed.
pub fn serve(
    listen: SocketAddr,
    container: &str,
    port: u16,
    podman: &Podman<'_>,
    ready: impl FnOnce(std::result::Result<(), String>),
) -> std::result::Result<(), String> {
    // SAFETY: ignoring SIGHUP has no preconditions; the forwarder outlives galley's terminal.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            let message = format!("cannot listen on {listen}: {e}");
            ready(Err(message.clone()));
            return Err(message);
        }
    };
    let target = Target {
        container: container.to_owned(),
        cached: Mutex::new(None),
    };
    if let Err(e) = target.netns(podman, true) {
        ready(Err(e.to_string()));
        return Err(e.to_string());
    }
    ready(Ok(()));
    let limit = max_connections();
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if active.load(Ordering::SeqCst) >= limit {
                drop(client);
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (active, target) = (active.clone(), &target);
            s.spawn(move || {
                carry(client, target, podman, port);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// One connection: into the sandbox (finding its namespace again once if the first attempt
/// fails: the container may have restarted), then both directions until both end.
fn carry(client: TcpStream, target: &Target, podman: &Podman<'_>, port: u16) {
    let attempt = |fresh: bool| {
        target
            .netns(podman, fresh)
            .and_then(|ns| connect_in(&ns, port))
    };
    let Ok(inside) = attempt(false).or_else(|_| attempt(true)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = (client.set_nodelay(true), inside.set_nodelay(true));
    let (activity, idle) = (Activity::new(), idle_timeout());
    std::thread::scope(|s| {
        s.spawn(|| pump(&client, &inside, &activity, idle));
        pump(&inside, &client, &activity, idle);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_ports_of_sandboxes_without_egress_are_forwarded_and_only_as_root() {
        let mut m = crate::runtime::podman::tests::manifest();
        assert!(
            !forwarded(&m),
            "an 'egress sandbox publishes through podman"
        );
        m.network = Network::Isolated;
        assert!(forwarded(&m) && check(&m, true).is_ok());
        let (message, help) = check(&m, false).unwrap_err();
        assert!(
            message.contains("needs root") && help.contains("'egress"),
            "{message}"
        );
        m.ports[0].protocol = Protocol::Udp;
        assert!(check(&m, true).unwrap_err().0.contains("TCP only"));
        m.ports.clear();
        assert!(!forwarded(&m) && check(&m, false).is_ok());
    }

    #[test]
    fn a_pump_carries_bytes_through_a_fixed_buffer_and_ends_the_far_side() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let sender = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&vec![7u8; 3 * BUFFER + 5]).unwrap();
        });
        let (from, _) = l.accept().unwrap();
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = TcpStream::connect(sink.local_addr().unwrap()).unwrap();
        let (mut far, _) = sink.accept().unwrap();
        pump(&from, &to, &Activity::new(), Duration::from_secs(5));
        let mut got = Vec::new();
        far.read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        assert_eq!(got.len(), 3 * BUFFER + 5);
    }

    #[test]
    fn a_connection_idle_both_ways_is_closed_after_the_idle_limit_and_a_busy_one_is_not() {
        let pair = || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let near = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            (near, l.accept().unwrap().0)
        };
        let ((mut client, from), (to, mut far)) = (pair(), pair());
        let idle = Duration::from_millis(400);
        let activity = Activity::new();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| pump(&from, &to, &activity, idle));
            // Bytes every 200 ms keep it open past the limit.
            let mut last = Instant::now();
            for _ in 0..5 {
                client.write_all(b"x").unwrap();
                last = Instant::now();
                std::thread::sleep(Duration::from_millis(200));
            }
            assert!(started.elapsed() > idle * 2);
            let mut got = [0u8; 5];
            far.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"xxxxx", "a busy connection was cut");
            // Then silence: both sides are ended within about the limit.
            far.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(far.read(&mut [0u8; 1]).unwrap(), 0);
            assert!(last.elapsed() >= idle && last.elapsed() < idle * 5, "{:?}", last.elapsed());
        });
        client.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert!(!matches!(client.read(&mut [0u8; 1]), Ok(n) if n > 0));
    }

    #[test]
    fn a_record_whose_process_is_gone_or_another_is_not_ours() {
        let me = std::process::id();
        let mine = Record {
            pid: me,
            start: start_time(me).unwrap(),
            listen: "127.0.0.1:1".parse().unwrap(),
            port: 1,
        };
        assert!(!is_ours(&mine), "the test binary is not a forwarder");
        assert!(!is_ours(&Record {
            pid: u32::MAX - 1,
            ..mine
        }));
    }
}

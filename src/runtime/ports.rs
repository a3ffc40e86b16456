//! Host ports given per instance (`--host-ports auto`, and every preview of `galley serve`): each
//! published port of the instance gets a loopback host port from a range, recorded in
//! `GALLEY_HOME/state/<project>/<instance>/_ports.json` (stable across re-applies; freed when
//! destroy removes the state directory). A port another instance recorded, or that something
//! on the host already holds, is not given. Assignments are made under one lock
//! (`GALLEY_HOME/state/ports.lock`), so two applies never take the same port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::naming::Instance;
use super::{Result, RuntimeError};
use crate::domain::port::Protocol;
use crate::manifest::SandboxManifest;

/// The range `--host-ports auto` takes ports from.
pub const DEFAULT_RANGE: (u16, u16) = (20000, 20999);
/// The file under the instance's state directory (`_` is not in any sandbox name).
const FILE: &str = "_ports.json";

/// `sandbox/container/protocol` -> host port.
pub type Assignment = BTreeMap<String, u16>;

fn key(sandbox: &str, container: u16, protocol: Protocol) -> String {
    format!("{sandbox}/{container}/{}", protocol.as_str())
}

fn file(home: &Path, instance: &Instance) -> PathBuf {
    instance.state_dir(home).join(FILE)
}

/// The instance's recorded assignment, if it has one.
pub fn recorded(home: &Path, instance: &Instance) -> Option<Assignment> {
    let text = std::fs::read_to_string(file(home, instance)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Rewrite the manifests' published ports to the instance's recorded assignment, when it has
/// one (so `plan` and `status` see what apply with `--host-ports auto` started). Returns it.
pub fn reuse(
    home: &Path,
    instance: &Instance,
    manifests: &mut [SandboxManifest],
) -> Option<Assignment> {
    let a = recorded(home, instance)?;
    rewrite(manifests, &a);
    Some(a)
}

fn rewrite(manifests: &mut [SandboxManifest], a: &Assignment) {
    for m in manifests.iter_mut() {
        for p in m.ports.iter_mut() {
            if let Some(host) = a.get(&key(&m.sandbox, p.container, p.protocol)) {
                p.host = *host;
                p.address = IpAddr::V4(Ipv4Addr::LOCALHOST);
            }
        }
        m.ports.sort();
    }
}

/// Give every published port of the manifests a loopback host port of this instance from
/// `range` (keeping the ones recorded before), record the assignment and rewrite them to it.
pub fn assign(
    home: &Path,
    instance: &Instance,
    manifests: &mut [SandboxManifest],
    range: (u16, u16),
) -> Result<Assignment> {
    let state = home.join("state");
    fs_err::create_dir_all(&state).map_err(RuntimeError::io(&state))?;
    let _lock = flock(&state.join("ports.lock"))?;
    let old = recorded(home, instance).unwrap_or_default();
    let taken = taken_by_others(home, instance);
    let mut new = Assignment::new();
    let mut mine = BTreeSet::new();
    for m in manifests.iter() {
        let name = &m.sandbox;
        for p in &m.ports {
            let k = key(name, p.container, p.protocol);
            let keep = old.get(&k).copied().filter(|h| {
                (range.0..=range.1).contains(h) && !taken.contains(h) && !mine.contains(h)
            });
            let port = match keep {
                Some(h) => h,
                None => (range.0..=range.1)
                    .find(|h| {
                        !taken.contains(h)
                            && !mine.contains(h)
                            && !old.values().any(|o| o == h)
                            && free(*h, p.protocol)
                    })
                    .ok_or_else(|| {
                        RuntimeError::Other(format!(
                            "no free host port left in {}-{} for sandbox `{name}` port {}",
                            range.0, range.1, p.container
                        ))
                    })?,
            };
            mine.insert(port);
            new.insert(k, port);
        }
    }
    let dir = instance.state_dir(home);
    fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    let path = file(home, instance);
    let text = serde_json::to_string_pretty(&new).expect("ports serialize") + "\n";
    crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(RuntimeError::io(&path))?;
    rewrite(manifests, &new);
    Ok(new)
}

/// Ports recorded by every other instance under this home.
fn taken_by_others(home: &Path, instance: &Instance) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let mine = instance.state_dir(home);
    let Ok(projects) = std::fs::read_dir(home.join("state")) else {
        return out;
    };
    for p in projects.flatten() {
        let Ok(instances) = std::fs::read_dir(p.path()) else {
            continue;
        };
        for i in instances.flatten() {
            if i.path() == mine {
                continue;
            }
            if let Some(a) = std::fs::read_to_string(i.path().join(FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<Assignment>(&t).ok())
            {
                out.extend(a.values());
            }
        }
    }
    out
}

/// Whether nothing on the host holds `port` on loopback now.
fn free(port: u16, protocol: Protocol) -> bool {
    let addr = (Ipv4Addr::LOCALHOST, port);
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind(addr).is_ok(),
        Protocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
    }
}

struct Flock(#[allow(dead_code)] std::fs::File);

fn flock(path: &Path) -> Result<Flock> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(RuntimeError::io(path))?;
    // SAFETY: the descriptor is valid for the lifetime of `f`.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(RuntimeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Flock(f))
}

/// One line per assigned port, for `plan`: `web 8080/tcp -> 127.0.0.1:20001`.
pub fn describe(a: &Assignment) -> Vec<String> {
    a.iter()
        .map(|(k, port)| {
            let mut parts = k.splitn(3, '/');
            let (s, c, p) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            format!("{s} {c}/{p} -> 127.0.0.1:{port}")
        })
        .collect()
}

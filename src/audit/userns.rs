//! The user namespace check, from the kernel: the container's `/proc/PID/uid_map` and `gid_map`
//! must map its ids onto host ids of its own. It fails on the host's identity mapping (uid 1000
//! inside would be the host's uid 1000, which can then read the sandbox's secrets and ptrace it),
//! on a mapping that uses host root or an id of a host account or group, on a declared user
//! the mapping leaves out, and on any host id another running galley sandbox's own mapping uses.

use std::path::Path;

use super::{Sink, USER_MAP};
use crate::domain::IdMap;
use crate::manifest::SandboxManifest;

/// Host ids of accounts (`/etc/passwd`) or groups (`/etc/group`): the third field of each line.
fn host_ids(file: &str) -> Vec<(String, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

fn read_map(pid: u32, kind: &str) -> Result<IdMap, String> {
    let path = Path::new("/proc").join(pid.to_string()).join(kind);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    IdMap::parse_proc(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Check the mappings of the container whose init process is `init` against the host's
/// accounts and against `others`, every other running galley container (name, pid).
pub fn check(init: u32, m: &SandboxManifest, others: &[(String, u32)], sink: &mut Sink<'_>) {
    sink.ran(USER_MAP);
    let declared = m.user.ids();
    for (kind, accounts, declared) in [
        ("uid_map", host_ids("/etc/passwd"), declared.map(|(u, _)| u)),
        ("gid_map", host_ids("/etc/group"), declared.map(|(_, g)| g)),
    ] {
        let map = match read_map(init, kind) {
            Ok(map) => map,
            Err(e) => return sink.not_run(USER_MAP, format!("cannot read the user namespace mapping: {e}")),
        };
        let expected = "a range of unused host ids of its own";
        if map.maps_host_root() || map.0.is_empty() {
            sink.fail(USER_MAP, format!("the container shares the host's ids ({kind} {map})"), expected, format!("{kind} {map}"));
            continue;
        }
        if let Some(id) = declared.filter(|id| map.host_id(*id).is_none()) {
            sink.fail(USER_MAP, format!("the declared id {id} is not mapped ({kind} {map})"), format!("{id} mapped"), format!("{kind} {map}"));
        }
        let used: Vec<String> = accounts.iter().filter(|(_, id)| map.uses_host_id(*id)).map(|(n, id)| format!("{n} ({id})")).collect();
        if !used.is_empty() {
            sink.fail(
                USER_MAP,
                format!("the container's {kind} maps onto host ids of {}", used.join(", ")),
                expected,
                format!("{kind} {map}"),
            );
        }
        for (name, pid) in others {
            // A container that stopped since it was listed holds no ids any more; one in the
            // host's namespace fails its own audit and would overlap every sandbox here.
            let Ok(theirs) = read_map(*pid, kind) else { continue };
            if !theirs.maps_host_root() && map.overlaps(&theirs) {
                sink.fail(
                    USER_MAP,
                    format!("the container's {kind} shares host ids with galley container {name} ({theirs})"),
                    expected,
                    format!("{kind} {map}"),
                );
            }
        }
    }
}

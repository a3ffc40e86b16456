//! Checks over podman's record of a container (`podman inspect`): what the runtime was told to
//! enforce. The kernel checks in [`super::kernel`] confirm what is actually in force.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;
use crate::domain::labels::{egress_network_name, network_name};
use crate::domain::MountPath;
use crate::model::Network;

/// Names of runtime sockets that hand out full control of the host.
pub const RUNTIME_SOCKETS: &[&str] = &["docker.sock", "podman.sock", "containerd.sock", "crio.sock", "dockershim.sock"];

pub fn is_runtime_socket(path: &str) -> bool {
    RUNTIME_SOCKETS.iter().any(|s| path.ends_with(s)) || path.ends_with("/run/podman") || path.ends_with("/run/docker")
}

/// Run every inspect-based check of `o` against `m`.
pub fn run(o: &Observed, m: &SandboxManifest, cx: &Context, secrets: &SecretValues, sink: &mut Sink<'_>) {
    let i = &o.inspect;
    let host = |k: &str| i.pointer(&format!("/HostConfig/{k}")).cloned().unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();

    sink.ran(IMAGE);
    match (m.image.digest.map(|d| d.to_string()), o.image_digest()) {
        (Some(want), Some(got)) if want != got => sink.fail(IMAGE, "the container runs another image than the pinned one", &want, got),
        (Some(want), None) => sink.fail(IMAGE, "podman does not say which image the container runs", want, "no image digest"),
        (Some(_), Some(_)) => {}
        (None, got) => sink.warn(
            IMAGE,
            "no galley.lock pins the image, so which image the container runs was not checked (run `galley lock`, then `galley apply`)",
            "an image digest pinned by galley.lock",
            got.unwrap_or("no image digest"),
        ),
    }
    sink.ran(MANIFEST);
    let want = m.digest().to_string();
    match o.label(LABEL_MANIFEST) {
        Some(l) if l == want => {}
        got => sink.fail(
            MANIFEST,
            "the container was created from another manifest than the current config's",
            want,
            got.unwrap_or("no label"),
        ),
    }

    sink.ran(PRIVILEGED);
    if host("Privileged").as_bool() != Some(false) {
        sink.fail(
            PRIVILEGED,
            "the container is privileged",
            "Privileged=false",
            format!("Privileged={}", host("Privileged")),
        );
    }

    sink.ran(CAPABILITIES);
    let want: BTreeSet<String> =
        m.capabilities.iter().map(|c| format!("CAP_{}", c.trim_start_matches("CAP_"))).collect();
    for key in ["EffectiveCaps", "BoundingCaps"] {
        let got: BTreeSet<String> = strings(i.get(key));
        if got != want {
            sink.fail(CAPABILITIES, format!("{key} differ from the declared capabilities"), list(&want), list(&got));
        }
    }

    sink.ran(NO_NEW_PRIVS);
    let opts: Vec<String> = strings(i.pointer("/HostConfig/SecurityOpt")).into_iter().collect();
    if !opts.iter().any(|o| o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true")
    {
        sink.fail(NO_NEW_PRIVS, "no-new-privileges is not set", "no-new-privileges", opts.join(" "));
    }

    seccomp(o, m, &opts, sink);

    sink.ran(READ_ONLY);
    if host("ReadonlyRootfs").as_bool() != Some(m.read_only) {
        sink.fail(
            READ_ONLY,
            "the root filesystem is not mounted as declared",
            format!("ReadonlyRootfs={}", m.read_only),
            format!("ReadonlyRootfs={}", host("ReadonlyRootfs")),
        );
    }

    sink.ran(USER);
    let user = i.pointer("/Config/User").map(text).unwrap_or_default();
    let want = m.user.podman_arg();
    if user != want {
        sink.fail(
            USER,
            "the container runs as another user than declared",
            want,
            if user.is_empty() { "image default (root)".into() } else { user },
        );
    }

    for (check, key) in [
        (PID_NS, "PidMode"),
        (IPC_NS, "IpcMode"),
        (UTS_NS, "UTSMode"),
        (USER_NS, "UsernsMode"),
        (NETWORK, "NetworkMode"),
    ] {
        sink.ran(check);
        let mode = text(&host(key));
        if mode == "host" || mode.starts_with("container:") || mode.starts_with("ns:") {
            sink.fail(check, format!("{key} shares a namespace it must not"), "a private namespace", mode);
        }
    }
    network(o, m, cx, sink);

    sink.ran(DEVICES);
    let devices = host("Devices");
    if devices.as_array().is_some_and(|d| !d.is_empty()) {
        sink.fail(DEVICES, "host devices are passed into the container", "none", devices.to_string());
    }

    ports(i, m, sink);
    mounts(i, m, sink);
    limits(i, m, sink);

    sink.ran(SECRETS);
    let env: Vec<String> = strings(i.pointer("/Config/Env")).into_iter().collect();
    let argv: Vec<String> =
        strings_vec(i.pointer("/Config/Cmd")).into_iter().chain(strings_vec(i.pointer("/Config/Entrypoint"))).collect();
    for name in m.secrets.keys() {
        let hit = |items: &[String]| items.iter().any(|s| secrets.found_in(s.as_bytes()).any(|n| n == name));
        if hit(&env) {
            sink.fail(
                SECRETS,
                format!("secret {name} visible in the container's recorded environment"),
                "only in /run/secrets",
                "in Config.Env",
            );
        }
        if hit(&argv) {
            sink.fail(
                SECRETS,
                format!("secret {name} visible in the container's recorded command"),
                "only in /run/secrets",
                "in Config.Cmd",
            );
        }
    }
}

fn seccomp(o: &Observed, m: &SandboxManifest, opts: &[String], sink: &mut Sink<'_>) {
    sink.ran(SECCOMP);
    let annotation = o.inspect.pointer("/Config/Annotations/io.podman.annotations.seccomp").and_then(Value::as_str);
    let from_opts = opts.iter().find_map(|o| o.strip_prefix("seccomp=").or_else(|| o.strip_prefix("seccomp:")));
    let got = from_opts.or(annotation);
    let Some(want) = m.seccomp.digest.map(|d| d.to_string()) else {
        sink.warn(SECCOMP, "the sandbox declares seccomp 'unconfined", "a profile", "unconfined");
        return;
    };
    let want = want.as_str();
    match got {
        None => sink.fail(
            SECCOMP,
            "podman's built-in profile is in force instead of the declared one",
            want,
            "podman default",
        ),
        Some("unconfined") => sink.fail(SECCOMP, "seccomp is unconfined", want, "unconfined"),
        Some(path) => match profile_digest(Path::new(path)) {
            Ok(d) if d == want => {}
            Ok(d) => sink.fail(SECCOMP, format!("the profile at {path} is not the declared one"), want, d),
            Err(e) => sink.fail(SECCOMP, format!("cannot read the profile at {path}: {e}"), want, "unreadable"),
        },
    }
}

/// Digest of a profile file: of its bytes when canonical, else of its canonical form.
pub fn profile_digest(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let canonical = crate::canonical::to_vec(&json);
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(canonical))))
}

fn network(o: &Observed, m: &SandboxManifest, cx: &Context, sink: &mut Sink<'_>) {
    let instance = &cx.instance;
    let nets: BTreeSet<String> = o
        .inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let mode = o.inspect.pointer("/HostConfig/NetworkMode").and_then(Value::as_str).unwrap_or_default();
    let want: BTreeSet<String> = match m.network {
        Network::None => BTreeSet::new(),
        Network::Isolated => [network_name(&m.project, instance)].into(),
        // The runner joins egress sandboxes to the instance's internal network (peers) and to
        // the instance's routed network (the way out).
        Network::Egress => [network_name(&m.project, instance), egress_network_name(&m.project, instance)].into(),
    };
    let none_ok = m.network != Network::None || mode == "none";
    if nets != want || !none_ok {
        let shown = if nets.is_empty() { format!("network mode {mode}") } else { list(&nets) };
        sink.fail(
            NETWORK,
            "the container's networks differ from the declared ones",
            if want.is_empty() { "none".into() } else { list(&want) },
            shown,
        );
    }
    if m.network == Network::Isolated {
        for n in nets.intersection(&want) {
            if cx.internal.get(n) != Some(&true) {
                sink.fail(NETWORK, format!("network {n} has a route out"), "an --internal network", "a routed network");
            }
        }
    }
}

fn ports(i: &Value, m: &SandboxManifest, sink: &mut Sink<'_>) {
    sink.ran(PORTS);
    // A sandbox without egress publishes nothing through podman: galley forwards its ports.
    let want: BTreeSet<String> = m
        .ports
        .iter()
        .filter(|_| m.network == Network::Egress)
        .map(|p| format!("{}:{}->{}/{}", p.address, p.host, p.container, p.protocol.as_str())).collect();
    let mut got = BTreeSet::new();
    let bindings = i.pointer("/HostConfig/PortBindings").and_then(Value::as_object);
    for (key, list) in bindings.into_iter().flatten() {
        for b in list.as_array().into_iter().flatten() {
            let ip = b.get("HostIp").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("0.0.0.0");
            let port = b.get("HostPort").and_then(Value::as_str).unwrap_or_default();
            let (cport, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            got.insert(format!("{ip}:{port}->{cport}/{proto}"));
        }
    }
    if i.pointer("/HostConfig/PublishAllPorts").and_then(Value::as_bool) == Some(true) {
        got.insert("--publish-all".into());
    }
    for extra in got.difference(&want) {
        sink.fail(PORTS, format!("port {extra} is published but not declared"), list(&want), extra.clone());
    }
    for missing in want.difference(&got) {
        sink.fail(PORTS, format!("declared port {missing} is not published as declared"), missing.clone(), list(&got));
    }
}

fn mounts(i: &Value, m: &SandboxManifest, sink: &mut Sink<'_>) {
    sink.ran(MOUNTS);
    sink.ran(RUNTIME_SOCKET);
    let mut seen_volumes = BTreeSet::new();
    for mount in i.get("Mounts").and_then(Value::as_array).into_iter().flatten() {
        let field = |k: &str| mount.get(k).and_then(Value::as_str).unwrap_or_default();
        let (kind, src, dst) = (field("Type"), field("Source"), field("Destination"));
        let dst_path = MountPath::parse(dst).ok();
        let rw = mount.get("RW").and_then(Value::as_bool).unwrap_or(true);
        if is_runtime_socket(src) || is_runtime_socket(dst) {
            sink.fail(
                RUNTIME_SOCKET,
                format!("a runtime socket is mounted at {dst}"),
                "no runtime socket",
                format!("{src} -> {dst}"),
            );
            continue;
        }
        match kind {
            "volume" => match m.volumes.iter().find(|v| dst_path.as_ref() == Some(&v.path)) {
                Some(v) if v.read_only != rw && field("Name").ends_with(v.name.as_str()) => {
                    seen_volumes.insert(v.path.clone());
                }
                _ => sink.fail(
                    MOUNTS,
                    format!("volume {} at {dst} is not declared as mounted", field("Name")),
                    declared(m),
                    format!("{} -> {dst} rw={rw}", field("Name")),
                ),
            },
            "bind" if is_secret_mount(m, src, dst) && !rw => {}
            _ => sink.fail(
                MOUNTS,
                format!("host path {src} is mounted at {dst}"),
                declared(m),
                format!("{kind} {src} -> {dst} rw={rw}"),
            ),
        }
    }
    for v in m.volumes.iter().filter(|v| !seen_volumes.contains(&v.path)) {
        sink.fail(
            MOUNTS,
            format!("declared volume {} is not mounted at {}", v.name, v.path),
            format!("{} -> {}", v.name, v.path),
            "missing",
        );
    }
    let tmpfs = i.pointer("/HostConfig/Tmpfs").and_then(Value::as_object);
    let tmpfs: BTreeSet<&str> = tmpfs.into_iter().flat_map(|t| t.keys().map(String::as_str)).collect();
    let mounted = |p: &MountPath| tmpfs.iter().any(|t| MountPath::parse(t).is_ok_and(|t| t == *p));
    // podman adds /run and /var/tmp (and /tmp) to read-only containers by itself.
    let implicit = |p: &str| m.read_only && ["/run", "/tmp", "/var/tmp"].contains(&p);
    for t in &tmpfs {
        if !m.tmpfs.iter().any(|d| MountPath::parse(t).is_ok_and(|t| t == d.path)) && !implicit(t) {
            sink.fail(MOUNTS, format!("tmpfs {t} is not declared"), declared(m), format!("tmpfs {t}"));
        }
    }
    for t in m.tmpfs.iter().filter(|t| !mounted(&t.path)) {
        sink.fail(MOUNTS, format!("declared tmpfs {} is not mounted", t.path), format!("tmpfs {}", t.path), "missing");
    }
}

/// A declared secret's file, mounted from a file of the same name in a memory-backed directory
/// (never a host file that happens to be mounted at /run/secrets).
fn is_secret_mount(m: &SandboxManifest, src: &str, dst: &str) -> bool {
    let Some(name) = dst.strip_prefix("/run/secrets/").filter(|n| m.secrets.contains_key(*n)) else { return false };
    let src = Path::new(src);
    src.file_name().is_some_and(|f| f == name) && src.parent().is_some_and(in_memory)
}

/// Whether `dir` is on tmpfs or ramfs.
fn in_memory(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: an all-zero statfs is a valid value to be overwritten; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
}

fn declared(m: &SandboxManifest) -> String {
    let mut items: Vec<String> = m.volumes.iter().map(|v| format!("volume {} -> {}", v.name, v.path)).collect();
    items.extend(m.tmpfs.iter().map(|t| format!("tmpfs {}", t.path)));
    items.extend(m.secrets.keys().map(|s| format!("secret /run/secrets/{s} (read-only)")));
    if items.is_empty() { "nothing".into() } else { items.join(", ") }
}

fn limits(i: &Value, m: &SandboxManifest, sink: &mut Sink<'_>) {
    let num = |k: &str| i.pointer(&format!("/HostConfig/{k}")).and_then(Value::as_i64).unwrap_or(0);
    sink.ran(MEMORY);
    let want = m.resources.memory.bytes().unwrap_or(0) as i64;
    if num("Memory") != want {
        sink.fail(
            MEMORY,
            "the memory limit is not the declared one",
            m.resources.memory.to_string(),
            show_limit(num("Memory")),
        );
    }
    sink.ran(CPU);
    let want = (m.resources.cpus.cores() * 1e9).round() as i64;
    let period = num("CpuPeriod");
    let got = match num("NanoCpus") {
        0 if period > 0 => num("CpuQuota").max(0) * 1_000_000_000 / period,
        n => n,
    };
    if got != want {
        sink.fail(
            CPU,
            "the CPU quota is not the declared one",
            format!("{} cpus", m.resources.cpus),
            format!("{} cpus", got as f64 / 1e9),
        );
    }
    sink.ran(PIDS);
    let got = num("PidsLimit").max(0);
    if got != i64::from(m.resources.pids) {
        sink.fail(PIDS, "the process limit is not the declared one", m.resources.pids.to_string(), show_limit(got));
    }
    sink.ran(ULIMITS);
    let ulimits = i.pointer("/HostConfig/Ulimits").and_then(Value::as_array).cloned().unwrap_or_default();
    for (name, want) in [("RLIMIT_NOFILE", m.resources.nofile), ("RLIMIT_NPROC", m.resources.nproc)] {
        let Some(want) = want else { continue };
        let got = ulimits.iter().find(|u| u.get("Name").and_then(Value::as_str) == Some(name));
        let pair = got.map(|u| (u.get("Soft").and_then(Value::as_u64), u.get("Hard").and_then(Value::as_u64)));
        if pair != Some((Some(want), Some(want))) {
            let shown =
                pair.map(|(s, h)| format!("{}:{}", s.unwrap_or(0), h.unwrap_or(0))).unwrap_or_else(|| "unset".into());
            sink.fail(ULIMITS, format!("{name} is not the declared one"), format!("{want}:{want}"), shown);
        }
    }
}

fn show_limit(n: i64) -> String {
    if n <= 0 { "unlimited".into() } else { n.to_string() }
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    strings_vec(v).into_iter().collect()
}

fn strings_vec(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() { "none".into() } else { set.iter().cloned().collect::<Vec<_>>().join(", ") }
}

#[cfg(test)]
pub(crate) mod tests;

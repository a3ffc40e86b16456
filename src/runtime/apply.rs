//! Converge an instance to its plan. Everything that can fail without side effects (host
//! limits, images, secret values) is checked first; then orphans go, networks and volumes
//! appear, and each sandbox is (re)started. A sandbox that fails is removed again, so the
//! instance is always "every container matches its manifest or is absent" and a re-run
//! converges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::doctor;
use super::host::{self, HostFacts};
use super::naming::Instance;
use super::plan::{Kind, Plan};
use super::podman::{Podman, RunSpec};
use super::secrets_dir::SecretsDir;
use super::{state, ImageSource, Result, RuntimeError};
use crate::manifest::SandboxManifest;
use crate::domain::SeccompChoice;
use crate::model::{Network, Project};
use crate::secrets::{Resolver, SecretValue};

/// What apply needs besides the plan.
pub struct Context<'a> {
    pub home: &'a Path,
    pub lib_root: &'a Path,
    pub project: &'a Project,
    pub instance: &'a Instance,
    pub podman: &'a Podman<'a>,
    pub facts: &'a HostFacts,
    pub images: &'a dyn ImageSource,
    pub secrets: &'a Resolver<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub sandbox: String,
    pub message: String,
    pub help: Option<String>,
    /// The tail of the container's log, when it started and exited.
    pub log: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub started: Vec<String>,
    pub destroyed: Vec<String>,
    pub unchanged: Vec<String>,
    pub failures: Vec<Failure>,
}

/// A sandbox ready to start: every input resolved.
struct Ready<'m> {
    manifest: &'m SandboxManifest,
    image: String,
    seccomp: Option<PathBuf>,
    secrets: Vec<(String, SecretValue)>,
}

pub fn apply(ctx: &Context<'_>, plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut report = Report::default();
    let fail = |report: &mut Report, sandbox: &str, e: RuntimeError, log: Option<String>| {
        report.failures.push(Failure { sandbox: sandbox.to_owned(), help: e.help(), message: e.to_string(), log });
    };
    // 1. Resolve everything that can fail without side effects: first the host checks of
    // `galley doctor` that every start needs, then each sandbox.
    if plan.sandboxes.iter().any(|a| a.manifest.is_some() && matches!(a.action, Kind::Create | Kind::Replace)) {
        // The sandbox-ids check reads two files and is never remembered: they change without a trace
        // in the host's fingerprint.
        let mut checks = doctor::start_checks(ctx.podman, ctx.facts, ctx.home);
        checks.push(doctor::sandbox_ids(ctx.facts));
        doctor::first_failure(&checks, None)?;
    }
    let mut ready = Vec::new();
    // The network checks, run once, when the first networked sandbox is prepared.
    let mut network = None;
    for action in &plan.sandboxes {
        let Some(m) = action.manifest.as_ref().filter(|_| matches!(action.action, Kind::Create | Kind::Replace)) else {
            if action.action == Kind::Unchanged {
                report.unchanged.push(action.sandbox.clone());
            }
            continue;
        };
        if m.network != Network::None {
            let checks = network.get_or_insert_with(|| doctor::network(ctx.podman));
            if let Err(e) = doctor::first_failure(checks, Some(&m.sandbox)) {
                fail(&mut report, &m.sandbox, e, None);
                continue;
            }
        }
        match prepare(ctx, m) {
            Ok(r) => ready.push(r),
            Err(e) => fail(&mut report, &m.sandbox, e, None),
        }
    }
    let secrets_dir = SecretsDir::new(ctx.instance.run_dir(ctx.home));
    // 2. Orphans.
    let orphans: Vec<&str> = plan.sandboxes.iter().filter(|a| a.action == Kind::Destroy).map(|a| a.container.as_str()).collect();
    if !orphans.is_empty() {
        progress(&format!("destroying {}", orphans.join(", ")));
        ctx.podman.remove("container", &orphans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        for a in plan.sandboxes.iter().filter(|a| a.action == Kind::Destroy) {
            secrets_dir.remove_sandbox(&a.sandbox);
            state::remove(ctx.home, ctx.instance, &a.sandbox);
            super::forward::stop(ctx.home, ctx.instance, &a.sandbox);
            report.destroyed.push(a.sandbox.clone());
        }
    }
    // 3. Networks and volumes, those the sandboxes about to start use.
    let used = |network: &str| ready.iter().any(|r| ctx.instance.networks_for(r.manifest.network).iter().any(|(n, _)| n == network));
    for (name, internal) in plan.resources.create_networks.iter().filter(|(name, _)| used(name)) {
        progress(&format!("creating network {name}"));
        ctx.podman.create_network(ctx.instance, name, *internal)?;
    }
    // The host side of every network a starting or running sandbox joins is closed (again: a
    // re-run repairs removed rules) before any starts.
    if ctx.facts.root {
        let unchanged = plan.sandboxes.iter().filter(|a| a.action == Kind::Unchanged).filter_map(|a| a.manifest.as_ref());
        let joined = ready.iter().map(|r| r.manifest).chain(unchanged);
        let mut nets: Vec<String> = joined.flat_map(|m| ctx.instance.networks_for(m.network)).map(|(n, _)| n).collect();
        nets.sort();
        nets.dedup();
        // Without a network to join, no bridge appears whose name a stale rule could match: the
        // orphans' rules wait for the next apply that joins one.
        if !nets.is_empty() {
            super::firewall::close(ctx.podman, &nets)?;
        }
    }
    let volume_names: BTreeMap<String, String> = ready
        .iter()
        .flat_map(|r| r.manifest.volumes.iter().map(|v| (ctx.instance.volume(&v.name), v.name.to_string())))
        .collect();
    for v in &plan.resources.create_volumes {
        if let Some(short) = volume_names.get(v) {
            progress(&format!("creating volume {v}"));
            ctx.podman.create_volume(ctx.instance, short)?;
        }
    }
    // 4. Replaced containers go before their successors start.
    let replaced: Vec<String> = plan
        .sandboxes
        .iter()
        .filter(|a| a.action == Kind::Replace && ready.iter().any(|r| r.manifest.sandbox == a.sandbox))
        .map(|a| a.container.clone())
        .collect();
    ctx.podman.remove("container", &replaced)?;
    // Volumes under an older galley's names, now that no container uses them.
    for (old, new) in plan.resources.move_volumes.iter().filter(|(_, new)| volume_names.contains_key(new)) {
        progress(&format!("moving the files of volume {old} to {new}, galley's new name for it"));
        ctx.podman.move_volume(old, new, ctx.home)?;
    }
    // 5. Start.
    let mut started = Vec::new();
    for r in &ready {
        let m = r.manifest;
        progress(&format!("starting {}", ctx.instance.container(&m.sandbox)));
        state::remove(ctx.home, ctx.instance, &m.sandbox);
        match start(ctx, &secrets_dir, r) {
            Ok(()) => started.push(m),
            Err(e) => {
                let name = ctx.instance.container(&m.sandbox);
                let log = Some(ctx.podman.log_tail(&name, 20)).filter(|l| !l.is_empty() && !l.starts_with("(no log"));
                let _ = ctx.podman.remove("container", &[name]);
                secrets_dir.remove_sandbox(&m.sandbox);
                fail(&mut report, &m.sandbox, e, log);
            }
        }
    }
    // 6. Verify they are running: each one's first process, from the pid podman wrote, is
    // alive in a pid namespace of its own; podman is asked (one `podman ps`) only about the
    // others.
    if !started.is_empty() {
        let alive: Vec<bool> = started.iter().map(|m| first_process_alive(&state::pidfile(ctx.home, ctx.instance, &m.sandbox))).collect();
        let live = if alive.iter().all(|a| *a) { Vec::new() } else { ctx.podman.containers(ctx.instance)? };
        for (m, alive) in started.into_iter().zip(alive) {
            let name = ctx.instance.container(&m.sandbox);
            match live.iter().find(|c| c.name == name) {
                other if !alive && !other.is_some_and(|c| c.running()) => {
                    let what = other.map_or("is gone".to_owned(), |c| format!("{} with exit code {}", c.state, c.exit_code));
                    let log = Some(ctx.podman.log_tail(&name, 20));
                    ctx.podman.remove("container", &[name])?;
                    secrets_dir.remove_sandbox(&m.sandbox);
                    fail(&mut report, &m.sandbox, RuntimeError::Other(format!("the container {what} right after starting")), log);
                }
                _ => {
                    // Its ports, when it has no egress, through galley's forwarder.
                    let exe = std::env::current_exe().map_err(RuntimeError::io("the galley executable"))?;
                    if let Err(e) = super::forward::start(ctx.home, ctx.instance, m, &exe, ctx.podman.runtime.as_deref()) {
                        ctx.podman.remove("container", &[name])?;
                        secrets_dir.remove_sandbox(&m.sandbox);
                        fail(&mut report, &m.sandbox, e, None);
                        continue;
                    }
                    state::write(ctx.home, ctx.instance, m)?;
                    report.started.push(m.sandbox.clone());
                }
            }
        }
    }
    // 7. Networks nobody uses any more.
    if !plan.resources.remove_networks.is_empty() {
        ctx.podman.remove("network", &plan.resources.remove_networks)?;
        for n in plan.resources.remove_networks.iter().filter(|_| ctx.facts.root) {
            super::firewall::remove(ctx.podman.runner, n)?;
        }
    }
    if secrets_dir.is_empty() {
        secrets_dir.remove_all();
    }
    Ok(report)
}

/// Check and resolve one sandbox's inputs.
fn prepare<'m>(ctx: &Context<'_>, m: &'m SandboxManifest) -> Result<Ready<'m>> {
    host::check(m, ctx.facts)?;
    super::podman::validate(m, &ctx.instance.run_dir(ctx.home))?;
    // The image's id, without asking podman: `start` loads it only when podman has none.
    let image = ctx.images.podman_ref(m)?;
    if !m.secrets.is_empty() && m.user.ids().is_none() {
        return Err(RuntimeError::Secret {
            sandbox: m.sandbox.clone(),
            name: m.secrets.keys().next().cloned().unwrap_or_default(),
            message: format!("secret files are owned by the sandbox's uid, but user \"{}\" is not numeric; write it as uid:gid", m.user),
        });
    }
    let mut secrets = Vec::new();
    for (name, source) in &m.secrets {
        let value = ctx.secrets.resolve(name, source).map_err(|error| RuntimeError::Resolve {
            sandbox: m.sandbox.clone(),
            name: name.clone(),
            error,
        })?;
        secrets.push((name.clone(), value));
    }
    let seccomp = seccomp_file(ctx, m)?;
    Ok(Ready { manifest: m, image, seccomp, secrets })
}

/// Start the container: with one `podman run` when it has no secrets; else create it, hand its
/// secret files to the host ids its user namespace maps the sandbox's user to (known only once
/// podman has chosen the range), then start it. Either way podman writes the pid of its first
/// process to [`state::pidfile`]. The image goes by its id, loaded into podman only when podman
/// says it has none.
fn start(ctx: &Context<'_>, dir: &SecretsDir, r: &Ready<'_>) -> Result<()> {
    let m = r.manifest;
    let mut mounts = Vec::new();
    dir.remove_sandbox(&m.sandbox);
    if !r.secrets.is_empty() {
        dir.ensure_tmpfs()?;
        for (name, value) in &r.secrets {
            mounts.push((dir.write(&m.sandbox, name, value)?, name.clone()));
        }
    }
    let (nofile, nproc) = host::ulimits(m, ctx.facts);
    let files: Vec<PathBuf> = mounts.iter().map(|(path, _)| path.clone()).collect();
    let spec = RunSpec { manifest: m, instance: ctx.instance, image: r.image.clone(), seccomp: r.seccomp.clone(), secrets: mounts, nofile, nproc };
    let hooks = if files.is_empty() { None } else { Some(super::hooks::install(ctx.home)?) };
    // A pid left from an earlier container must not vouch for this one.
    let pidfile = state::pidfile(ctx.home, ctx.instance, &m.sandbox);
    let state_dir = ctx.instance.state_dir(ctx.home);
    fs_err::create_dir_all(&state_dir).map_err(RuntimeError::io(&state_dir))?;
    match std::fs::remove_file(&pidfile) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(&pidfile)(e)),
        _ => {}
    }
    let launch = |image: String| ctx.podman.launch(&RunSpec { image, ..spec.clone() }, &pidfile, hooks.as_deref(), files.is_empty());
    let id = match launch(r.image.clone())? {
        Some(id) => id,
        None => {
            let image = ctx.images.load(m)?;
            launch(image.clone())?.ok_or_else(|| RuntimeError::Image {
                sandbox: m.sandbox.clone(),
                message: format!("podman has no image {image} right after loading it"),
            })?
        }
    };
    if files.is_empty() {
        return Ok(());
    }
    let name = ctx.instance.container(&m.sandbox);
    dir.claim(&m.sandbox, &id)?;
    let (uid, gid) = m.user.ids().expect("prepare refuses secrets for a named user");
    let (uids, gids) = ctx.podman.id_maps(&name)?;
    let (Some(host_uid), Some(host_gid)) = (uids.host_id(uid), gids.host_id(gid)) else {
        return Err(RuntimeError::Other(format!(
            "sandbox `{}`: its user namespace (uids {uids}, gids {gids}) maps no host id to its user {uid}:{gid}",
            m.sandbox
        )));
    };
    if ctx.facts.root {
        for f in &files {
            dir.chown(f, host_uid, host_gid)?;
        }
    } else {
        // Rootless podman's ids are those of its own user namespace, where only it may chown.
        let c = ctx.podman.cmd().args(["unshare", "chown", "--no-dereference", &format!("{host_uid}:{host_gid}")]).args(&files);
        ctx.podman.runner.check(&c)?;
    }
    ctx.podman.start(&name, hooks.as_deref())
}

/// Whether the process whose pid podman wrote to `pidfile` is alive (not a zombie) in a pid
/// namespace other than galley's, as a sandbox's first process is. `false` when unsure.
fn first_process_alive(pidfile: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(pidfile).ok().and_then(|t| t.trim().parse::<u32>().ok()).filter(|p| *p > 1) else {
        return false;
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let state = std::fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()));
    let own_ns = |p: &Path| std::fs::read_link(p.join("ns/pid")).ok();
    matches!(state, Some(c) if !matches!(c, 'Z' | 'X' | 'x'))
        && own_ns(&proc).is_some_and(|ns| Some(ns) != own_ns(Path::new("/proc/self")))
}

/// Write the sandbox's seccomp profile under `GALLEY_HOME/seccomp/` (once per digest).
fn seccomp_file(ctx: &Context<'_>, m: &SandboxManifest) -> Result<Option<PathBuf>> {
    let Some(digest) = &m.seccomp.digest else { return Ok(None) };
    let dir = ctx.home.join("seccomp");
    let path = dir.join(format!("{}.json", digest.hex()));
    if path.is_file() {
        return Ok(Some(path));
    }
    let choice = match m.seccomp.profile.as_str() {
        SeccompChoice::CUSTOM => ctx.project.sandboxes.get(&m.sandbox).map(|s| s.seccomp.clone()),
        named => SeccompChoice::named(named).ok(),
    };
    let profile = choice
        .map(|c| crate::seccomp::resolve(ctx.lib_root, &c))
        .transpose()
        .map_err(|e| RuntimeError::Other(format!("sandbox `{}`: {e}", m.sandbox)))?
        .flatten()
        .filter(|p| p.digest == *digest)
        .ok_or_else(|| RuntimeError::Other(format!("sandbox `{}`: seccomp profile {digest} cannot be found", m.sandbox)))?;
    fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    crate::fsutil::write_atomic(&path, &profile.bytes()).map_err(RuntimeError::io(&path))?;
    Ok(Some(path))
}

//! `galley plan`: what `apply` would do to an instance, desired versus live. Also the session
//! setup (project, instance, host facts, podman) the other runner commands share.

use clap::Args;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::exec::{Scrubbed, System};
use crate::manifest::SandboxManifest;
use crate::project::Loaded;
use crate::runtime::host::{self, HostFacts};
use crate::runtime::plan::{self, Live, Plan};
use crate::runtime::podman::Podman;
use crate::runtime::state::{self, InstanceLock};
use crate::runtime::{self, Instance, RuntimeError};
use crate::lock::Lock;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct InstanceArg {
    /// Instance of the project to act on; each has its own containers, network and volumes
    #[arg(long, default_value = crate::domain::DEFAULT_INSTANCE, value_name = "NAME")]
    pub instance: String,
}

/// `--host-ports auto`: give the instance its own loopback host ports.
#[derive(Debug, Args)]
pub struct HostPortsArg {
    /// `auto` gives each published port of this instance its own loopback host port (from
    /// 20000-20999), recorded and kept across applies, freed by destroy
    #[arg(long, value_enum, value_name = "MODE")]
    pub host_ports: Option<HostPorts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostPorts {
    /// The host ports galley.ncl declares
    Declared,
    /// Ports of this instance's own, from a range
    Auto,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    #[command(flatten)]
    pub host_ports: HostPortsArg,
    /// Refuse to run unless galley.lock is current, and use its manifests
    #[arg(long)]
    pub locked: bool,
    /// Exit 0 when there is nothing to do and 2 when there are changes
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// What every runner command starts from.
pub struct Session {
    pub loaded: Loaded,
    pub instance: Instance,
    pub facts: HostFacts,
    pub desired: Vec<SandboxManifest>,
    pub home: std::path::PathBuf,
    /// The current lock, when the manifests come from it.
    pub lock: Option<Lock>,
}

impl Session {
    pub fn podman(&self) -> Podman<'static> {
        Podman { runner: &System, runtime: self.facts.runtime.clone() }
    }
}

/// Load the project and detect the host.
pub fn open(env: &Env, out: &Printer, instance: &str, locked: bool) -> Result<Session, CliError> {
    let loaded = super::project::load(env)?;
    let lock = current_lock(env, out, &loaded.project, locked)?;
    let instance = Instance::new(&loaded.project.name, instance)?;
    let facts = host::detect(&env.oci_runtime)?;
    let mut desired = match &lock {
        Some(lock) => lock.sandboxes.values().map(|s| s.manifest.clone()).collect(),
        None => runtime::desired(env, &loaded.project)?,
    };
    let home = std::path::absolute(&env.home).map_err(RuntimeError::io(&env.home))?;
    // An instance given its own host ports keeps them in plan, status and apply.
    runtime::ports::reuse(&home, &instance, &mut desired);
    if out.verbosity.verbose() && out.text() {
        eprintln!(
            "host: oci runtime {}, cgroups {} (controllers: {}), hard limits nofile {} nproc {}{}",
            facts.runtime.as_deref().unwrap_or("podman's default"),
            facts.cgroup.as_str(),
            facts.controllers.join(", "),
            facts.nofile_hard,
            facts.nproc_hard,
            if facts.sys_resource { " (may be raised: CAP_SYS_RESOURCE)" } else { "" },
        );
    }
    Ok(Session { loaded, instance, facts, desired, home, lock })
}

/// A session with its instance's live state, and the instance's lock when it was asked for.
pub struct Opened {
    pub session: Session,
    pub live: Live,
    pub lock: Option<InstanceLock>,
}

/// [`open`] and the live state of the instance, locked first when `lock` (for a command that
/// changes it). The state is read while galley.ncl evaluates, when the project's record names
/// the instance (see [`Early`]).
pub fn open_live(env: &Env, out: &Printer, instance: &str, locked: bool, lock: bool) -> Result<Opened, CliError> {
    let early = Early::start(env, instance, lock);
    let session = match open(env, out, instance, locked) {
        Ok(session) => session,
        Err(e) => {
            drop(early.map(Early::finish));
            return Err(e);
        }
    };
    let podman = session.podman();
    let (live, lock) = match early {
        Some(early) if early.instance == session.instance => {
            let (live, held) = early.finish();
            (plan::complete_for(&podman, &session.instance, &session.desired, live?)?, held)
        }
        guessed => {
            drop(guessed.map(Early::finish));
            let held = if lock { Some(state::lock(&session.home, &session.instance)?) } else { None };
            (plan::live_for(&podman, &session.instance, &session.desired)?, held)
        }
    };
    Ok(Opened { session, live, lock })
}

/// The live state of the instance the project had when galley last built or applied it from
/// this directory (the home's project record), read on a thread while galley.ncl evaluates in
/// its child process: the podman listings then cost no time of their own. Taken only when the
/// evaluated project has that name; otherwise the instance is locked and read again. With the
/// lock asked for, it is taken before the read, as it would be after evaluation; when it is
/// held elsewhere, nothing is read early.
struct Early {
    instance: Instance,
    lock: Option<InstanceLock>,
    live: std::thread::JoinHandle<runtime::Result<Live>>,
}

impl Early {
    fn start(env: &Env, instance: &str, lock: bool) -> Option<Early> {
        let name = crate::image::home::recorded_name(&env.home, &env.project_dir)?;
        let instance = Instance::new(&name, instance).ok()?;
        let runtime = host::runtime_to_use(&env.oci_runtime).ok()?;
        let home = std::path::absolute(&env.home).ok()?;
        let lock = if lock { Some(state::lock(&home, &instance).ok()?) } else { None };
        // Before evaluation galley does not know which variables hold the config's secrets:
        // podman gets only what it reads.
        static SCRUBBED: Scrubbed<'static> = Scrubbed(&System);
        let podman = Podman { runner: &SCRUBBED, runtime };
        let read = instance.clone();
        let live = std::thread::spawn(move || plan::live_but_volumes(&podman, &read));
        Some(Early { instance, lock, live })
    }

    /// Wait for the read (also when it will not be used: no podman call outlives galley).
    fn finish(self) -> (runtime::Result<Live>, Option<InstanceLock>) {
        (self.live.join().expect("podman thread"), self.lock)
    }
}

/// The lock to run from: the current galley.lock, or none (the manifests then come from
/// galley.ncl, without image digests). With `locked`, a missing or stale lock is an error.
pub(crate) fn current_lock(env: &Env, out: &Printer, project: &crate::model::Project, locked: bool) -> Result<Option<Lock>, CliError> {
    if locked {
        return super::lock::require_current(env, project).map(Some);
    }
    let Some(old) = Lock::read(&env.project_dir.join(crate::lock::LOCK_FILE))? else {
        return Ok(None);
    };
    let desired = crate::lock::desired_offline(env, project, Some(&old))?;
    let stale = crate::lock::staleness(&old, &desired);
    if stale.is_empty() {
        return Ok(Some(old));
    }
    out.text_note(format_args!("warning: galley.lock is stale ({}); using galley.ncl", stale[0]));
    out.text_note("  help: run `galley lock`, or pass --locked to refuse a stale lock");
    Ok(None)
}

/// The plan of the session's instance.
pub fn compute(session: &Session, live: &Live) -> Plan {
    plan::compute(&session.home, &session.instance, &session.desired, live)
}

/// With `--host-ports auto`, give the session's instance its own host ports (recorded now, so a
/// plan reserves them); returns one line per port.
pub fn host_ports(session: &mut Session, arg: &HostPortsArg) -> Result<Vec<String>, CliError> {
    if arg.host_ports != Some(HostPorts::Auto) {
        return Ok(runtime::ports::recorded(&session.home, &session.instance).map(|a| runtime::ports::describe(&a)).unwrap_or_default());
    }
    let a = runtime::ports::assign(&session.home, &session.instance, &mut session.desired, runtime::ports::DEFAULT_RANGE)?;
    Ok(runtime::ports::describe(&a))
}

pub fn run(env: &Env, out: &Printer, args: &PlanArgs) -> Outcome {
    let Opened { mut session, live, .. } = open_live(env, out, &args.instance.instance, args.locked, false)?;
    let ports = host_ports(&mut session, &args.host_ports)?;
    let plan = compute(&session, &live);
    if out.json() && ports.is_empty() {
        out.json_pretty(&plan);
    } else if out.json() {
        out.json_pretty(&serde_json::json!({ "plan": plan, "host_ports": ports }));
    } else {
        print!("{}", plan.render(out.stdout_color));
        for line in &ports {
            println!("  host port: {line}");
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() { ExitStatus::Changes } else { ExitStatus::Success })
}

//! `galley plan`: what `apply` would do to an instance, desired versus live. Also the session
//! setup (project, instance, host facts, podman) the other runner commands share.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use crate::exec::System;
use crate::manifest::SandboxManifest;
use crate::project::{self, Loaded};
use crate::runtime::host::{self, HostFacts};
use crate::runtime::plan::{self, Plan};
use crate::runtime::podman::Podman;
use crate::runtime::{self, Instance, RuntimeError};
use crate::lock::Lock;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct InstanceArg {
    /// Instance of the project to act on; each has its own containers, network and volumes
    #[arg(long, default_value = crate::domain::DEFAULT_INSTANCE, value_name = "NAME")]
    pub instance: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
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

/// Load the project and detect the host; on failure the error is already printed.
pub fn open(settings: &Settings, instance: &str, locked: bool) -> Result<Session, ExitCode> {
    let loaded = match project::load(settings, None) {
        Ok(loaded) if !loaded.has_errors() => loaded,
        Ok(loaded) => return Err(super::render::report(settings, &loaded.diagnostics, true)),
        Err(diagnostics) => return Err(super::render::report(settings, &diagnostics, true)),
    };
    let lock = current_lock(settings, &loaded.project, locked)?;
    let setup = || -> Result<_, RuntimeError> {
        let instance = Instance::new(&loaded.project.name, instance)?;
        let facts = host::detect(std::env::var(crate::env_vars::GALLEY_OCI_RUNTIME).ok())?;
        let desired = match &lock {
            Some(lock) => lock.sandboxes.values().map(|s| s.manifest.clone()).collect(),
            None => runtime::desired(settings, &loaded.project)?,
        };
        let home = std::path::absolute(&settings.home).map_err(RuntimeError::io(&settings.home))?;
        Ok((instance, facts, desired, home))
    };
    let (instance, facts, desired, home) = setup().map_err(|e| fail(settings, &e))?;
    if settings.verbosity > 0 && settings.format == Format::Text {
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

/// The lock to run from: the current galley.lock, or none (the manifests then come from
/// galley.ncl, without image digests). With `locked`, a missing or stale lock is an error.
pub(crate) fn current_lock(settings: &Settings, project: &crate::model::Project, locked: bool) -> Result<Option<Lock>, ExitCode> {
    if locked {
        return super::lock::require_current(settings, project).map(Some);
    }
    let old = match Lock::read(&settings.project_dir.join(crate::lock::LOCK_FILE)) {
        Ok(Some(old)) => old,
        Ok(None) => return Ok(None),
        Err(e) => return Err(super::fail(settings, &e, e.help())),
    };
    let stale = crate::lock::desired_offline(settings, project, Some(&old))
        .map(|desired| crate::lock::staleness(&old, &desired))
        .map_err(|e| super::fail(settings, &e, e.help()))?;
    if stale.is_empty() {
        return Ok(Some(old));
    }
    if settings.verbosity >= 0 && settings.format == Format::Text {
        eprintln!("warning: galley.lock is stale ({}); using galley.ncl", stale[0]);
        eprintln!("  help: run `galley lock`, or pass --locked to refuse a stale lock");
    }
    Ok(None)
}

/// Print a runner error with its help line; exit 2.
pub fn fail(settings: &Settings, e: &RuntimeError) -> ExitCode {
    super::fail(settings, e, e.help().as_deref())
}

/// The live state and the plan of the session's instance.
pub fn compute(settings: &Settings, session: &Session) -> Result<Plan, ExitCode> {
    let live = plan::live(&session.podman(), &session.instance).map_err(|e| fail(settings, &e))?;
    Ok(plan::compute(&session.home, &session.instance, &session.desired, &live))
}

/// Whether to color stdout: a terminal, and NO_COLOR unset.
pub fn stdout_color() -> bool {
    std::env::var_os(crate::env_vars::NO_COLOR).is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

pub fn run(settings: &Settings, args: &PlanArgs) -> ExitCode {
    let session = match open(settings, &args.instance.instance, args.locked) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let plan = match compute(settings, &session) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match settings.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan).expect("plan serializes")),
        Format::Text => print!("{}", plan.render(stdout_color())),
    }
    if args.detailed_exitcode && plan.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

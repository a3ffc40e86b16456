//! `galley lock`: pin every input and write each sandbox's manifest; `--check` for CI.

use std::process::ExitCode;

use clap::Args;

use crate::lock::{self, Lock};
use crate::project;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Write nothing; exit 0 when galley.lock is current, 1 when stale (with a diff), 2 on error
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
    /// Resolve base image tags again (all images, or the ones named)
    #[arg(long, num_args = 0.., value_name = "IMAGE")]
    pub update: Option<Vec<String>>,
    /// Never touch the network: every base must already be pinned or in the store
    #[arg(long)]
    pub offline: bool,
}

pub fn run(settings: &Settings, args: &LockArgs) -> ExitCode {
    let loaded = match project::load(settings, None) {
        Ok(l) if !l.has_errors() => l,
        Ok(l) => return error_exit(super::render::report(settings, &l.diagnostics, true)),
        Err(d) => return error_exit(super::render::report(settings, &d, true)),
    };
    let path = settings.project_dir.join(lock::LOCK_FILE);
    let old = match Lock::read(&path) {
        Ok(old) => old,
        Err(e) => return super::fail(settings, &e, e.help()),
    };
    if args.check {
        return check(settings, &loaded.project, old.as_ref());
    }
    // Held until the lock names what the build wrote, so gc cannot take it in between.
    let _writing = match super::build::writing(settings, &loaded.project.name) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let update = args.update.as_deref();
    let outcome = match lock::relock(settings, &loaded.project, old.as_ref(), update, args.offline) {
        Ok(lock) => lock,
        Err(e) => return super::fail(settings, &e, e.help()),
    };
    let (changes, _) = lock::diff(old.as_ref(), &outcome);
    if changes.is_empty() && old.is_some() {
        if settings.verbosity >= 0 {
            eprintln!("galley.lock is up to date");
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = outcome.write(&path) {
        return super::fail(settings, &e, None);
    }
    if settings.verbosity >= 0 {
        let what = if old.is_some() { format!("{} changed fields", changes.len()) } else { "new".to_owned() };
        eprintln!("wrote galley.lock: {} images, {} sandboxes ({what})", outcome.images.len(), outcome.sandboxes.len());
        if settings.verbosity > 0 {
            for c in &changes {
                eprintln!("  {c}");
            }
        }
    }
    ExitCode::SUCCESS
}

/// Config errors are errors (2) for lock: 1 means "stale".
fn error_exit(code: ExitCode) -> ExitCode {
    if code == ExitCode::SUCCESS { code } else { ExitCode::from(2) }
}

fn check(settings: &Settings, project: &crate::model::Project, old: Option<&Lock>) -> ExitCode {
    let desired = match lock::desired_offline(settings, project, old) {
        Ok(d) => d,
        Err(e) => return super::fail(settings, &e, e.help()),
    };
    let Some(old) = old else {
        super::render::error_line(settings, "galley.lock is missing", Some("run `galley lock` and commit the file"));
        return ExitCode::from(1);
    };
    let (changes, unified) = lock::diff(Some(old), &desired);
    if changes.is_empty() && lock::complete(old) {
        if settings.verbosity > 0 {
            eprintln!("galley.lock is up to date");
        }
        return ExitCode::SUCCESS;
    }
    eprintln!("galley.lock is stale:");
    for c in &changes {
        eprintln!("  {c}");
    }
    if !lock::complete(&desired) {
        eprintln!("  help: run `galley lock` to build the changed images and pin their digests");
    } else {
        eprintln!("  help: run `galley lock` and commit galley.lock");
    }
    print!("{unified}");
    ExitCode::from(1)
}

/// For `--locked`: the lock on disk, when it is current; else print why and return the exit code.
pub(crate) fn require_current(settings: &Settings, project: &crate::model::Project) -> Result<Lock, ExitCode> {
    let path = settings.project_dir.join(lock::LOCK_FILE);
    let old = match Lock::read(&path) {
        Ok(Some(old)) => old,
        Ok(None) => {
            return Err(super::fail(settings, "--locked needs galley.lock, and there is none", Some("run `galley lock` and commit the file")));
        }
        Err(e) => return Err(super::fail(settings, &e, e.help())),
    };
    let desired = lock::desired_offline(settings, project, Some(&old)).map_err(|e| super::fail(settings, &e, e.help()))?;
    let changes = lock::staleness(&old, &desired);
    if changes.is_empty() {
        return Ok(old);
    }
    eprintln!("error: galley.lock is stale, refusing to run with --locked:");
    for c in &changes {
        eprintln!("  {c}");
    }
    eprintln!("  help: run `galley lock` and commit galley.lock");
    Err(ExitCode::from(1))
}

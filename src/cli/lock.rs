//! `galley lock`: pin every input and write each sandbox's manifest; `--check` for CI.

use clap::Args;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::lock::{self, Lock};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Write nothing; exit 0 when galley.lock is current, 1 when stale (with a diff), 2 on error
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
    /// Resolve base image tags and Debian package closures again (all images, or the ones named)
    #[arg(long, num_args = 0.., value_name = "IMAGE")]
    pub update: Option<Vec<String>>,
    /// Never touch the network: every base must already be pinned or in the store
    #[arg(long)]
    pub offline: bool,
}

pub fn run(env: &Env, out: &Printer, args: &LockArgs) -> Outcome {
    // Config errors are errors (2) for lock: 1 means "stale".
    let loaded = super::project::load(env).map_err(CliError::config_exits_as_error)?;
    let path = env.project_dir.join(lock::LOCK_FILE);
    let old = Lock::read(&path)?;
    if args.check {
        return check(env, out, &loaded.project, old.as_ref());
    }
    // Held until the lock names what the build wrote, so gc cannot take it in between.
    let _writing = super::build::writing(env, &loaded.project.name)?;
    let outcome = lock::relock(env, &loaded.project, old.as_ref(), args.update.as_deref(), args.offline)?;
    let (changes, _) = lock::diff(old.as_ref(), &outcome);
    if changes.is_empty() && old.is_some() {
        out.note("galley.lock is up to date");
        return Ok(ExitStatus::Success);
    }
    outcome.write(&path).map_err(|e| CliError::user(e, None))?;
    let what = if old.is_some() { format!("{} changed fields", changes.len()) } else { "new".to_owned() };
    out.note(format_args!("wrote galley.lock: {} images, {} sandboxes ({what})", outcome.images.len(), outcome.sandboxes.len()));
    for c in &changes {
        out.detail(format_args!("  {c}"));
    }
    Ok(ExitStatus::Success)
}

fn check(env: &Env, out: &Printer, project: &crate::model::Project, old: Option<&Lock>) -> Outcome {
    let desired = lock::desired_offline(env, project, old)?;
    let Some(old) = old else {
        out.error_line("galley.lock is missing", Some("run `galley lock` and commit the file"));
        return Ok(ExitStatus::No);
    };
    let (changes, unified) = lock::diff(Some(old), &desired);
    if changes.is_empty() && lock::complete(old) {
        out.detail("galley.lock is up to date");
        return Ok(ExitStatus::Success);
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
    Ok(ExitStatus::No)
}

/// For `--locked`: the lock on disk, when it is current.
pub(crate) fn require_current(env: &Env, project: &crate::model::Project) -> Result<Lock, CliError> {
    let Some(old) = Lock::read(&env.project_dir.join(lock::LOCK_FILE))? else {
        return Err(CliError::user("--locked needs galley.lock, and there is none", Some("run `galley lock` and commit the file")));
    };
    let desired = lock::desired_offline(env, project, Some(&old))?;
    let changes = lock::staleness(&old, &desired);
    if changes.is_empty() { Ok(old) } else { Err(CliError::StaleLock(changes)) }
}

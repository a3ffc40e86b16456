//! `galley __secrets-stopped GALLEY_HOME`: the OCI poststop hook podman runs when a sandbox with
//! secrets stops (see `runtime::hooks`). It reads the container's state on stdin and removes the
//! sandbox's secret files; it prints nothing on stdout, and a failure goes to podman's log.

use std::path::PathBuf;

use super::{CliError, ExitStatus, Outcome};
use crate::runtime::hooks;

#[derive(Debug, clap::Args)]
pub struct HookArgs {
    /// The GALLEY_HOME whose run directory holds the secret files
    pub home: PathBuf,
}

pub fn run(args: &HookArgs) -> Outcome {
    hooks::stopped(&args.home, std::io::stdin().lock()).map_err(|e| CliError::user(e, None))?;
    Ok(ExitStatus::Success)
}

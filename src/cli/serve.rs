//! `galley serve`: pull-request previews from signed GitHub webhooks (`--check` only evaluates
//! the operator config); and the hidden `galley __serve-config` that evaluates it in a bounded
//! child.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::exec::System;
use crate::serve::{self, ServeError};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The operator config (Nickel, checked against galley's serve schema)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Evaluate and check the config, print it as JSON, and exit
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ServeConfigArgs {
    #[arg(long)]
    pub memory_bytes: u64,
    #[arg(long)]
    pub stack_bytes: u64,
    pub file: PathBuf,
}

fn user(e: ServeError) -> CliError {
    let help = e.help();
    CliError::user(e.to_string(), help.as_deref())
}

pub fn run(env: &Env, out: &Printer, args: &ServeArgs) -> Outcome {
    let config = serve::config::load(env, &System, &args.config).map_err(user)?;
    if args.check {
        let repos: Vec<String> = config
            .repositories
            .keys()
            .map(ToString::to_string)
            .collect();
        out.data(serde_json::json!({ "listen": config.listen.to_string(), "repositories": repos }));
        return Ok(ExitStatus::Success);
    }
    let clock = super::audit_log::clock()?;
    let target = config.listen.to_string();
    // Logged as started before it listens, and ok or failed when it stops.
    super::audit_log::audited(env, "serve", &target, || {
        serve::run(env, config, clock).map_err(user)?;
        Ok(ExitStatus::Success)
    })
}

pub fn child(out: &Printer, env: &Env, args: &ServeConfigArgs) -> Outcome {
    let report = crate::project::confine(args.memory_bytes, args.stack_bytes, || {
        serve::config::child_report(env, &args.file)
    })
    .map_err(|e| CliError::user(e, None))?;
    out.data(report);
    Ok(ExitStatus::Success)
}

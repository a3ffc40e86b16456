//! `galley check`: evaluate, apply the schema, lint; report every finding.

use clap::{Args, ValueEnum};

use super::{Outcome, Printer};
use crate::project;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Treat findings of this severity as errors
    #[arg(long, value_enum)]
    pub deny: Option<Deny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    Warnings,
}

pub fn run(env: &Env, out: &Printer, args: &CheckArgs) -> Outcome {
    let mut diagnostics = match project::load(env, &crate::exec::System, None) {
        Ok(loaded) => loaded.diagnostics,
        Err(diagnostics) => diagnostics,
    };
    if args.deny == Some(Deny::Warnings) {
        for d in &mut diagnostics {
            d.severity = crate::diagnostic::Severity::Error;
        }
    }
    Ok(super::render::report(out, &diagnostics, false))
}

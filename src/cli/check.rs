//! `galley check`: evaluate, apply the schema, lint; report every finding.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::project;
use crate::settings::Settings;

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

pub fn run(settings: &Settings, args: &CheckArgs) -> ExitCode {
    let mut diagnostics = match project::load(settings, None) {
        Ok(loaded) => loaded.diagnostics,
        Err(diagnostics) => diagnostics,
    };
    if args.deny == Some(Deny::Warnings) {
        for d in &mut diagnostics {
            d.severity = crate::diagnostic::Severity::Error;
        }
    }
    super::render::report(settings, &diagnostics, false)
}

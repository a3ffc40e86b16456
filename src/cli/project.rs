//! The one way a command loads the project: evaluated, checked and linted in the bounded
//! evaluator, or its diagnostics as the error; and the hidden `galley __load` that evaluator runs.

use std::io::Read;

use clap::Args;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::exec::System;
use crate::project::{self, Loaded};
use crate::settings::Env;

/// The project, when it evaluates and has no errors; else its diagnostics (exit 1).
pub(crate) fn load(env: &Env) -> Result<Loaded, CliError> {
    match project::load(env, &System, None) {
        Ok(l) if !l.has_errors() => {
            // The variables that hold this project's `env` secrets stay in galley's process only.
            let sources = l
                .project
                .sandboxes
                .values()
                .flat_map(|s| s.secrets.values());
            crate::exec::withhold_env(sources.filter_map(|s| match s {
                crate::model::Secret::Env(var) => Some(var.clone()),
                _ => None,
            }));
            Ok(l)
        }
        Ok(l) => Err(CliError::config(l.diagnostics)),
        Err(d) => Err(CliError::config(d)),
    }
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Cap this process's memory at this many bytes before evaluating
    #[arg(long)]
    pub memory_bytes: u64,
    /// Evaluate on a thread with a stack of this many bytes
    #[arg(long)]
    pub stack_bytes: u64,
    /// Read galley.ncl's text from stdin instead of the file
    #[arg(long)]
    pub stdin: bool,
}

/// Evaluate within the limits and print the report the parent reads.
pub fn evaluate(out: &Printer, env: &Env, args: &EvaluateArgs) -> Outcome {
    let report = project::confine(args.memory_bytes, args.stack_bytes, || {
        let text = if args.stdin {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read stdin: {e}"))?;
            Some(String::from_utf8_lossy(&buf).into_owned())
        } else {
            None
        };
        Ok::<_, String>(project::child_report(env, text.as_deref()))
    });
    let report = report.and_then(|r| r).map_err(|e| CliError::user(e, None))?;
    out.data(report);
    Ok(ExitStatus::Success)
}

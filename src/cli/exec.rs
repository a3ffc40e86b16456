//! `galley exec SANDBOX -- CMD...`: run a command in a running sandbox as its declared user, with
//! no added privileges; the command's exit code is galley's.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::runtime::attach;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// The sandbox to run the command in
    pub sandbox: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(settings: &Settings, args: &ExecArgs) -> ExitCode {
    let session = match common::open(settings, &args.instance.instance, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let tty = std::io::stdin().is_terminal();
    match attach::exec(&session.podman(), &session.instance, &session.desired, &args.sandbox, &args.command, tty) {
        Ok(code) => exit_code(code),
        Err(e) => common::fail(settings, &e),
    }
}

/// A child's exit code as galley's own.
pub(crate) fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

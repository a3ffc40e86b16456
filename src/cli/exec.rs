//! `galley exec SANDBOX -- CMD...`: run a command in a running sandbox as its declared user, with
//! no added privileges; the command's exit code is galley's.

use std::io::IsTerminal;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use super::{ExitStatus, Outcome, Printer};
use crate::runtime::attach;
use crate::settings::Env;

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

pub fn run(env: &Env, out: &Printer, args: &ExecArgs) -> Outcome {
    let session = common::open(env, out, &args.instance.instance, false)?;
    let tty = std::io::stdin().is_terminal();
    let code = attach::exec(&session.podman(), &session.instance, &session.desired, &args.sandbox, &args.command, tty)?;
    Ok(ExitStatus::Child(code))
}

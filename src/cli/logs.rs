//! `galley logs SANDBOX [-f] [--since D] [--tail N]`: a running sandbox's output, streamed.

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::runtime::attach::{self, LogOptions};
use super::{ExitStatus, Outcome, Printer};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// The sandbox whose output to show
    pub sandbox: String,
    /// Keep streaming new output until the sandbox stops
    #[arg(short, long)]
    pub follow: bool,
    /// Only output since a time or duration (`10m`, `2024-05-01T10:00:00Z`)
    #[arg(long, value_name = "D")]
    pub since: Option<String>,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
}

pub fn run(env: &Env, out: &Printer, args: &LogsArgs) -> Outcome {
    let session = common::open(env, out, &args.instance.instance, false)?;
    let options = LogOptions { follow: args.follow, since: args.since.clone(), tail: args.tail };
    let code = attach::logs(&session.podman(), &session.instance, &session.desired, &args.sandbox, &options)?;
    Ok(ExitStatus::Child(code))
}

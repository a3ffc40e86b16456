//! `galley logs SANDBOX [-f] [--since D] [--tail N]`: a running sandbox's output, streamed.

use std::process::ExitCode;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::runtime::attach::{self, LogOptions};
use crate::settings::Settings;

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

pub fn run(settings: &Settings, args: &LogsArgs) -> ExitCode {
    let session = match common::open(settings, &args.instance.instance, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let options = LogOptions { follow: args.follow, since: args.since.clone(), tail: args.tail };
    match attach::logs(&session.podman(), &session.instance, &session.desired, &args.sandbox, &options) {
        Ok(code) => super::exec::exit_code(code),
        Err(e) => common::fail(settings, &e),
    }
}

//! The hidden `galley __forward`: one port forwarder into a sandbox without egress, started
//! detached by `apply` (see `runtime::forward`). It prints `ready` (or why not) on one line.

use std::io::Write;
use std::net::SocketAddr;

use clap::Args;

use super::{CliError, ExitStatus, Outcome};
use crate::exec::System;
use crate::runtime::forward;
use crate::runtime::podman::Podman;

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Host address and port to listen on
    #[arg(long)]
    pub listen: SocketAddr,
    /// The container whose network namespace connections go into
    #[arg(long)]
    pub container: String,
    /// The port inside the sandbox
    #[arg(long)]
    pub port: u16,
    /// The OCI runtime podman is asked for
    #[arg(long)]
    pub runtime: Option<String>,
}

pub fn run(args: &ForwardArgs) -> Outcome {
    let podman = Podman {
        runner: &System,
        runtime: args.runtime.clone(),
    };
    let ready = |outcome: Result<(), String>| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "{}",
            outcome.err().unwrap_or_else(|| "ready".into())
        );
        let _ = stdout.flush();
    };
    forward::serve(args.listen, &args.container, args.port, &podman, ready)
        .map_err(|e| CliError::user(e, None))?;
    Ok(ExitStatus::Success)
}

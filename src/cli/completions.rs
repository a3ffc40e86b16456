//! `galley completions SHELL`: completion scripts generated from the clap definition.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{ExitStatus, Outcome};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> Outcome {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "galley", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}

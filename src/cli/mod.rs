//! The command line: clap types, settings resolution and dispatch. Each subcommand is a short
//! function over library code returning an [`ExitCode`].
//!
//! Exit codes: 0 success; 1 the answer is "no" (errors in config, findings, stale lock, changes
//! with `--detailed-exitcode`); 2 usage or operational errors.

mod build;
mod check;
mod completions;
mod init;
mod load;
mod push;
mod render;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{self, Format, Settings};

#[derive(Debug, Parser)]
#[command(name = "galley", version, about = "Reproducible, typed, audited sandboxes", propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run as if started in DIR (the directory holding galley.ncl)
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Output format: text for people, json for programs
    #[arg(long, global = true, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Print less (errors only)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Type-check galley.ncl against the schema and run galley's lints
    Check(check::CheckArgs),
    /// Print the fully resolved config (defaults filled in) as canonical JSON
    Show,
    /// Write a starter galley.ncl
    Init(init::InitArgs),
    /// Print shell completions
    Completions(completions::CompletionsArgs),
    /// Build the project's images into the store and print their digests
    Build(build::BuildArgs),
    /// Push an image of this project to a registry
    Push(push::PushArgs),
    /// Load an image of this project into podman
    Load(load::LoadArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let settings = resolve(&cli.global);
    match cli.command {
        Command::Check(args) => check::run(&settings, &args),
        Command::Show => show::run(&settings),
        Command::Init(args) => init::run(&settings, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Build(args) => build::run(&settings, &args),
        Command::Push(args) => push::run(&settings, &args),
        Command::Load(args) => load::run(&settings, &args),
    }
}

fn resolve(global: &GlobalArgs) -> Settings {
    let env = |k: &str| std::env::var(k).ok();
    let color = std::env::var_os(crate::env_vars::NO_COLOR).is_none_or(|v| v.is_empty())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    Settings {
        project_dir: global.directory.clone().unwrap_or_else(|| PathBuf::from(".")),
        home: settings::default_home(env),
        format: match global.format {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
        },
        verbosity: if global.quiet { -1 } else { global.verbose.min(3) as i8 },
        color,
    }
}

/// Operational failure: print `error: ...` (and an optional help line) and exit 2.
pub(crate) fn fail(settings: &Settings, message: impl std::fmt::Display, help: Option<&str>) -> ExitCode {
    render::error_line(settings, &message.to_string(), help);
    ExitCode::from(2)
}

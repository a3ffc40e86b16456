//! The command line: clap types, settings resolution and dispatch. Each subcommand is a short
//! function over library code returning an [`ExitCode`].
//!
//! Exit codes: 0 success; 1 the answer is "no" (errors in config, findings, a stale lock); 2 usage
//! or operational errors. `plan --detailed-exitcode` follows Terraform: 2 means "changes".

mod apply;
mod build;
mod check;
mod completions;
mod export;
mod cp;
mod destroy;
mod doctor;
mod init;
mod lock;
mod plan;
mod lsp;
mod load;
mod push;
mod render;
mod secret;
mod show;
mod status;
mod verify;

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
    /// SARIF 2.1.0 (`galley verify` only; other commands print JSON)
    Sarif,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Type-check galley.ncl against the schema and run galley's lints
    Check(check::CheckArgs),
    /// Print the fully resolved config (defaults filled in) as canonical JSON
    Show,
    /// Write a starter galley.ncl
    Init(init::InitArgs),
    /// Pin every input and each sandbox's manifest in galley.lock (--check for CI)
    Lock(lock::LockArgs),
    /// Print shell completions
    Completions(completions::CompletionsArgs),
    /// Manage the project's encrypted secret store
    Secret(secret::SecretArgs),
    /// Export the project's sandboxes to another platform
    Export(export::ExportArgs),
    /// Show what apply would change: sandboxes to create, replace or destroy
    Plan(plan::PlanArgs),
    /// Create, replace and remove sandboxes until the instance matches galley.ncl
    Apply(apply::ApplyArgs),
    /// List the instance's sandboxes, their state and ports, and whether each matches galley.ncl
    Status(status::StatusArgs),
    /// Remove the instance's sandboxes, networks and secrets (volumes with --volumes)
    Destroy(destroy::DestroyArgs),
    /// Copy files into or out of a sandbox's volumes
    Cp(cp::CpArgs),
    /// Audit running sandboxes against their manifests from the host (exit 1 on findings)
    Verify(verify::VerifyArgs),
    /// Run the language server (diagnostics, hover, completion) on stdin and stdout
    Lsp(lsp::LspArgs),
    /// Evaluate galley.ncl for the language server and print its diagnostics as JSON
    #[command(name = "__eval", hide = true)]
    Eval(lsp::EvalArgs),
    /// Build the project's images into the store and print their digests
    Build(build::BuildArgs),
    /// Push an image of this project to a registry
    Push(push::PushArgs),
    /// Load an image of this project into podman
    Load(load::LoadArgs),
    /// Check this host for everything galley needs, with the fix for each missing piece
    Doctor,
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
        Command::Lock(args) => lock::run(&settings, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Secret(args) => secret::run(&settings, &args),
        Command::Export(args) => export::run(&settings, &args),
        Command::Plan(args) => plan::run(&settings, &args),
        Command::Apply(args) => apply::run(&settings, &args),
        Command::Status(args) => status::run(&settings, &args),
        Command::Destroy(args) => destroy::run(&settings, &args),
        Command::Cp(args) => cp::run(&settings, &args),
        Command::Verify(args) => verify::run(&settings, &args, cli.global.format == FormatArg::Sarif),
        Command::Lsp(args) => lsp::run(&settings, &args),
        Command::Eval(args) => lsp::eval(&settings, &args),
        Command::Build(args) => build::run(&settings, &args),
        Command::Push(args) => push::run(&settings, &args),
        Command::Load(args) => load::run(&settings, &args),
        Command::Doctor => doctor::run(&settings),
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
            FormatArg::Json | FormatArg::Sarif => Format::Json,
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

//! The command line: clap types, settings resolution and dispatch. Each subcommand is a short
//! function over library code returning an [`Outcome`]; `main` prints a [`CliError`] once.
//!
//! Exit codes: 0 success; 1 the answer is "no" (errors in config, findings, a stale lock); 2 usage
//! or operational errors; 70 a bug in galley. `plan --detailed-exitcode` follows Terraform: 2
//! means "changes".

mod apply;
mod audit_log;
mod build;
mod check;
mod completions;
mod export;
mod gc;
mod cp;
mod destroy;
mod exec;
mod doctor;
pub mod error;
mod init;
mod lock;
mod logs;
mod plan;
mod lsp;
mod load;
mod printer;
mod project;
mod push;
mod render;
mod secret;
mod show;
mod status;
mod token;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use error::{CliError, ExitStatus};
use printer::Printer;
use crate::settings::{Env, Flags, Format, Settings, Terminals};

/// What a command comes to.
pub type Outcome = Result<ExitStatus, CliError>;

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
    /// Evaluate galley.ncl under the evaluator's limits and print the result for the parent galley
    #[command(name = "__load", hide = true)]
    Evaluate(project::EvaluateArgs),
    /// Build the project's images into the store and print their digests
    Build(build::BuildArgs),
    /// Push an image of this project to a registry
    Push(push::PushArgs),
    /// Load an image of this project into podman
    Load(load::LoadArgs),
    /// Run a command in a running sandbox as its declared user, with no added privileges
    Exec(exec::ExecArgs),
    /// Show a running sandbox's output (-f follows)
    Logs(logs::LogsArgs),
    /// Remove store blobs, cache entries and podman images no recorded lock or container needs
    Gc(gc::GcArgs),
    /// Check this host for everything galley needs, with the fix for each missing piece
    Doctor,
    /// Show and check the tamper-evident audit log of every state-changing command
    Audit(audit_log::AuditArgs),
    /// Make, list, revoke and rotate API tokens for the admin API of `galley serve`
    Token(token::TokenArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(error::ERROR) } else { ExitCode::SUCCESS };
        }
    };
    let settings = resolve(&cli.global);
    let out = Printer::new(&settings);
    std::panic::set_hook(Box::new(|info| {
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{}{place}", error::panic_message(info.payload())));
    }));
    let sarif = cli.global.format == FormatArg::Sarif;
    let outcome = std::panic::catch_unwind(|| dispatch(&settings.env, &out, cli.command, sarif)).unwrap_or_else(|payload| {
        let recorded = PANIC.lock().unwrap_or_else(|p| p.into_inner()).take();
        Err(CliError::Bug(recorded.unwrap_or_else(|| error::panic_message(payload.as_ref()))))
    });
    match outcome {
        Ok(status) => status.into(),
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.code())
        }
    }
}

/// The message and place of the last panic, recorded by the hook `main` installs.
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn dispatch(env: &Env, out: &Printer, command: Command, sarif: bool) -> Outcome {
    match command {
        Command::Check(args) => check::run(env, out, &args),
        Command::Show => show::run(env, out),
        Command::Init(args) => init::run(env, out, &args),
        Command::Lock(args) => lock::run(env, out, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Secret(args) => secret::run(env, out, &args),
        Command::Export(args) => export::run(env, out, &args),
        Command::Plan(args) => plan::run(env, out, &args),
        Command::Apply(args) => apply::run(env, out, &args),
        Command::Status(args) => status::run(env, out, &args),
        Command::Destroy(args) => destroy::run(env, out, &args),
        Command::Cp(args) => cp::run(env, out, &args),
        Command::Verify(args) => verify::run(env, out, &args, sarif),
        Command::Lsp(args) => lsp::run(env, &args),
        Command::Eval(args) => lsp::eval(env, out, &args),
        Command::Evaluate(args) => project::evaluate(out, env, &args),
        Command::Build(args) => build::run(env, out, &args),
        Command::Push(args) => push::run(env, out, &args),
        Command::Load(args) => load::run(env, out, &args),
        Command::Exec(args) => exec::run(env, out, &args),
        Command::Logs(args) => logs::run(env, out, &args),
        Command::Gc(args) => gc::run(env, out, &args),
        Command::Doctor => doctor::run(env, out),
        Command::Audit(args) => audit_log::run(env, out, &args),
        Command::Token(args) => token::run(env, out, &args),
    }
}

fn resolve(global: &GlobalArgs) -> Settings {
    let flags = Flags {
        directory: global.directory.clone(),
        format: match global.format {
            FormatArg::Text => Format::Text,
            FormatArg::Json | FormatArg::Sarif => Format::Json,
        },
        quiet: global.quiet,
        verbose: global.verbose,
    };
    let terminals = Terminals {
        stderr: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        stdout: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    Settings::resolve(&flags, |k| std::env::var(k).ok(), terminals, crate::runtime::host::detect_oci_runtime)
}


//! `galley secret set|list|rm|rotate-master`: the project's encrypted secret store.

use std::ffi::OsString;

use clap::{Args, Subcommand};

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::env_vars::{GALLEY_MASTER_KEY, GALLEY_NEW_MASTER_KEY};
use crate::secrets::{self, SecretKey, Store, input};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from stdin (a no-echo prompt on a terminal)
    Set {
        name: String,
        /// Values are never taken from arguments
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        value: Vec<OsString>,
    },
    /// List stored secrets: names and times, never values
    List,
    /// Delete a secret
    Rm { name: String },
    /// Re-wrap every secret under a new master key, read from GALLEY_NEW_MASTER_KEY or stdin
    RotateMaster,
}

pub fn run(env: &Env, out: &Printer, args: &SecretArgs) -> Outcome {
    let command = &args.command;
    if let SecretCommand::Set { value, .. } = command
        && !value.is_empty()
    {
        let help = "pipe the value on stdin: printf %s \"$TOKEN\" | galley secret set NAME";
        return Err(CliError::user("secret values are never taken from arguments (they show in `ps` and shell history)", Some(help)));
    }
    let logged = match command {
        SecretCommand::Set { name, .. } => Some(("secret.set", name.as_str())),
        SecretCommand::Rm { name } => Some(("secret.rm", name.as_str())),
        SecretCommand::RotateMaster => Some(("secret.rotate-master", "*")),
        SecretCommand::List => None,
    };
    match logged {
        Some((action, name)) => {
            let target = super::audit_log::instance_target(env, name);
            super::audit_log::audited(env, action, &target, || secret_logged(env, out, command))
        }
        None => secret_logged(env, out, command),
    }
}

/// The command itself, once it is logged.
fn secret_logged(env: &Env, out: &Printer, command: &SecretCommand) -> Outcome {
    let loaded = super::project::load(env)?;
    let project = &loaded.project.name;
    let mut store = Store::open(&env.home, project, secrets::master_key()?)?;
    let note = |text: String| out.note(text);
    out.detail(format_args!("store: {}", store.path().display()));
    match command {
        SecretCommand::Set { name, .. } => {
            secrets::store::check_name(name)?;
            let value = input::read_stdin(&format!("value for {name}: "))
                .map_err(|e| CliError::user(format!("cannot read the value from stdin: {e}"), None))?;
            if value.is_empty() {
                return Err(CliError::user(format!("the value for `{name}` is empty"), Some("pipe the value on stdin")));
            }
            let version = store.set(name, &value)?;
            note(format!("set secret `{name}` (version {version}) for project `{project}`"));
        }
        SecretCommand::List => print_list(out, &store.list()),
        SecretCommand::Rm { name } => {
            store.remove(name)?;
            note(format!("removed secret `{name}` from project `{project}`"));
        }
        SecretCommand::RotateMaster => {
            let new = new_master_key()?;
            let count = store.rotate(new)?;
            let plural = if count == 1 { "" } else { "s" };
            note(format!("re-wrapped {count} secret{plural} of project `{project}` under the new master key"));
            note(format!("  help: set {GALLEY_MASTER_KEY} to the new key; the old key no longer opens this store"));
        }
    }
    Ok(ExitStatus::Success)
}

/// The new key from `GALLEY_NEW_MASTER_KEY`, else stdin (a no-echo prompt on a terminal).
fn new_master_key() -> Result<SecretKey, CliError> {
    if std::env::var_os(GALLEY_NEW_MASTER_KEY).is_some() {
        return Ok(SecretKey::from_env(GALLEY_NEW_MASTER_KEY)?);
    }
    let read = |prompt: &str| {
        let text = input::read_stdin(prompt).map_err(|e| CliError::user(format!("cannot read the new master key from stdin: {e}"), None))?;
        let text = std::str::from_utf8(text.expose_secret()).map_err(|_| secrets::CryptoError::BadKey { var: "the new master key" })?;
        Ok::<_, CliError>(SecretKey::parse(text, "the new master key")?)
    };
    let key = read("new master key: ")?;
    // A typo at a prompt that does not echo would lock every secret away: ask twice.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) && read("repeat the new master key: ")? != key {
        return Err(CliError::user("the two new master keys differ; nothing was changed", None));
    }
    Ok(key)
}

fn print_list(out: &Printer, entries: &[secrets::Entry]) {
    if out.json() {
        out.json_pretty(&entries);
        return;
    }
    if entries.is_empty() {
        out.note("no secrets stored yet; add one with `galley secret set NAME`");
        return;
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0).max(4);
    println!("{:width$}  {:20}  {:20}  VERSION", "NAME", "CREATED", "UPDATED");
    for e in entries {
        println!("{:width$}  {:20}  {:20}  {}", e.name, e.created, e.updated, e.version);
    }
}

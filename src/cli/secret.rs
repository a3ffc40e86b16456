//! `galley secret set|list|rm|rotate-master`: the project's encrypted secret store.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::env_vars::{GALLEY_MASTER_KEY, GALLEY_NEW_MASTER_KEY};
use crate::secrets::{self, SecretKey, Store, StoreError, input};
use crate::settings::{Format, Settings};

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

pub fn run(settings: &Settings, args: &SecretArgs) -> ExitCode {
    match execute(settings, &args.command) {
        Ok(code) => code,
        Err(Failure(message, help)) => super::fail(settings, message, help),
    }
}

struct Failure(String, Option<&'static str>);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(e.to_string(), e.help())
    }
}

impl From<secrets::CryptoError> for Failure {
    fn from(e: secrets::CryptoError) -> Self {
        Failure(e.to_string(), e.help())
    }
}

fn execute(settings: &Settings, command: &SecretCommand) -> Result<ExitCode, Failure> {
    if let SecretCommand::Set { value, .. } = command
        && !value.is_empty()
    {
        let help = "pipe the value on stdin: printf %s \"$TOKEN\" | galley secret set NAME";
        return Err(Failure("secret values are never taken from arguments (they show in `ps` and shell history)".into(), Some(help)));
    }
    let loaded = match crate::project::load(settings, None) {
        Ok(loaded) => loaded,
        Err(diagnostics) => return Ok(super::render::report(settings, &diagnostics, true)),
    };
    let project = &loaded.project.name;
    let mut store = Store::open(&settings.home, project, secrets::master_key()?)?;
    let note = |text: String| if settings.verbosity >= 0 { eprintln!("{text}") };
    if settings.verbosity >= 1 {
        eprintln!("store: {}", store.path().display());
    }
    match command {
        SecretCommand::Set { name, .. } => {
            secrets::store::check_name(name)?;
            let value = input::read_stdin(&format!("value for {name}: "))
                .map_err(|e| Failure(format!("cannot read the value from stdin: {e}"), None))?;
            if value.is_empty() {
                return Err(Failure(format!("the value for `{name}` is empty"), Some("pipe the value on stdin")));
            }
            let version = store.set(name, &value)?;
            note(format!("set secret `{name}` (version {version}) for project `{project}`"));
        }
        SecretCommand::List => print_list(settings, &store.list()),
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
    Ok(ExitCode::SUCCESS)
}

/// The new key from `GALLEY_NEW_MASTER_KEY`, else stdin (a no-echo prompt on a terminal).
fn new_master_key() -> Result<SecretKey, Failure> {
    if std::env::var_os(GALLEY_NEW_MASTER_KEY).is_some() {
        return Ok(SecretKey::from_env(GALLEY_NEW_MASTER_KEY)?);
    }
    let read = |prompt: &str| {
        let text = input::read_stdin(prompt).map_err(|e| Failure(format!("cannot read the new master key from stdin: {e}"), None))?;
        let text = std::str::from_utf8(text.expose_secret()).map_err(|_| secrets::CryptoError::BadKey { var: "the new master key" })?;
        Ok::<_, Failure>(SecretKey::parse(text, "the new master key")?)
    };
    let key = read("new master key: ")?;
    // A typo at a prompt that does not echo would lock every secret away: ask twice.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) && read("repeat the new master key: ")? != key {
        return Err(Failure("the two new master keys differ; nothing was changed".into(), None));
    }
    Ok(key)
}

fn print_list(settings: &Settings, entries: &[secrets::Entry]) {
    if settings.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(entries).expect("entries serialize"));
        return;
    }
    if entries.is_empty() {
        if settings.verbosity >= 0 {
            eprintln!("no secrets stored yet; add one with `galley secret set NAME`");
        }
        return;
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0).max(4);
    println!("{:width$}  {:20}  {:20}  VERSION", "NAME", "CREATED", "UPDATED");
    for e in entries {
        println!("{:width$}  {:20}  {:20}  {}", e.name, e.created, e.updated, e.version);
    }
}

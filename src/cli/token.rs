//! `galley token create|list|revoke|rotate`: the API tokens of `galley serve`'s admin API.
//! A token is printed once, when it is made; only its hash is kept.

use clap::{Args, Subcommand};

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::clock::{self, Clock};
use crate::settings::Env;
use crate::token::{Record, Scope, Token, TokenError, Tokens};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (this once only)
    Create {
        /// What the token is for, e.g. ci-deploy
        #[arg(long)]
        name: String,
        /// previews:read, previews:write (and read) or admin (everything, and the audit log)
        #[arg(long)]
        scope: Scope,
        /// How long it is valid: 90s, 15m, 12h, 30d (at most 90d)
        #[arg(long)]
        ttl: String,
    },
    /// List tokens: ids, names, scopes, times and state, never the tokens
    List,
    /// Refuse a token from now on
    Revoke { id: String },
    /// Make a new token to replace ID; ID stays valid for the grace period
    Rotate {
        id: String,
        /// How long the old token keeps working (default 1h; 0s ends it now)
        #[arg(long, default_value = "1h")]
        grace: String,
    },
}

pub fn run(env: &Env, out: &Printer, args: &TokenArgs) -> Outcome {
    let clock = super::audit_log::clock()?;
    let tokens = Tokens::open(&env.home, clock);
    let audited = |action: &str, target: &str, work: &mut dyn FnMut() -> Outcome| super::audit_log::audited(env, action, target, work);
    match &args.command {
        TokenCommand::Create { name, scope, ttl } => {
            let ttl = clock::parse_duration(ttl).map_err(|e| CliError::user(format!("--ttl: {e}"), Some("--ttl 30d")))?;
            let id = Tokens::new_id();
            audited("token.create", &id, &mut || {
                let (record, token) = tokens.create(&id, name, *scope, ttl)?;
                print_new(out, &record, &token, "created");
                Ok(ExitStatus::Success)
            })
        }
        TokenCommand::List => {
            print_list(out, &tokens.list()?, clock);
            Ok(ExitStatus::Success)
        }
        TokenCommand::Revoke { id } => audited("token.revoke", id, &mut || {
            let r = tokens.revoke(id)?;
            out.note(format_args!("revoked token {} ({})", r.id, r.name));
            Ok(ExitStatus::Success)
        }),
        TokenCommand::Rotate { id, grace } => {
            let grace = clock::parse_duration(grace).map_err(|e| CliError::user(format!("--grace: {e}"), Some("--grace 1h")))?;
            let new_id = Tokens::new_id();
            audited("token.rotate", id, &mut || {
                let (record, token) = tokens.rotate(id, &new_id, grace)?;
                print_new(out, &record, &token, &format!("rotated token {id} (valid {}s more) to", grace.as_secs()));
                Ok(ExitStatus::Success)
            })
        }
    }
}

/// The token on stdout, the only time it is shown; what it is on stderr.
fn print_new(out: &Printer, r: &Record, token: &Token, what: &str) {
    if out.json() {
        out.data(serde_json::json!({ "id": r.id, "name": r.name, "scope": r.scope, "expires": r.expires, "token": token.expose() }));
    } else {
        out.data(token.expose());
        out.note(format_args!("{what} token {} ({}, {}), expires {}", r.id, r.name, r.scope.as_str(), r.expires));
        out.note("  help: this is the only time the token is shown: store it now (it is kept only as a hash)");
    }
}

fn print_list(out: &Printer, records: &[Record], clock: Clock) {
    let now = clock.time();
    if out.json() {
        let list: Vec<_> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "name": r.name, "scope": r.scope, "created": r.created, "expires": r.expires,
                    "last_used": r.last_used, "revoked": r.revoked, "rotated_to": r.rotated_to, "state": r.state(now),
                })
            })
            .collect();
        out.json_pretty(&list);
        return;
    }
    if records.is_empty() {
        out.note("no tokens yet; make one with `galley token create --name NAME --scope SCOPE --ttl 30d`");
        return;
    }
    let width = records.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    println!("{:12}  {:width$}  {:14}  {:20}  {:20}  {:20}  STATE", "ID", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED");
    for r in records {
        let used = r.last_used.map_or_else(|| "never".to_owned(), |t| t.to_string());
        let state = r.state(now);
        println!("{:12}  {:width$}  {:14}  {:20}  {:20}  {:20}  {state}", r.id, r.name, r.scope.as_str(), r.created, r.expires, used);
    }
}

impl From<TokenError> for CliError {
    fn from(e: TokenError) -> Self {
        CliError::User { help: e.help().map(Into::into), message: e.to_string() }
    }
}

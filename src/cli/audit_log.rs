//! `galley audit show|verify`: read and check the tamper-evident audit log; and [`audited`],
//! which every state-changing command runs its work through, so it is logged before it acts
//! (and refused when it cannot be).

use clap::{Args, Subcommand};

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::audit_log::{self, Actor, Entry, Event, Filter, Log, LogError};
use crate::clock::{self, Clock};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the audit log's entries (oldest first), optionally only some
    Show {
        /// Only entries at or after this RFC 3339 time, or this long ago (`2h`, `7d`)
        #[arg(long, value_name = "TIME|DURATION")]
        since: Option<String>,
        /// Only this actor (`cli:alice`, `token:ab12`), or a kind of actor (`token:`)
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (`apply`), or a family of actions (`secret.`)
        #[arg(long)]
        action: Option<String>,
    },
    /// Check the chain of the audit log and report its first broken link (exit 1)
    Verify,
}

pub fn run(env: &Env, out: &Printer, args: &AuditArgs) -> Outcome {
    let log = Log::open(&env.home);
    match &args.command {
        AuditCommand::Show { since, actor, action } => {
            let since = since.as_deref().map(|s| parse_since(s, clock()?)).transpose()?;
            let filter = Filter { since, actor: actor.clone(), action: action.clone() };
            let entries: Vec<Entry> = log.read()?.into_iter().filter(|e| filter.matches(e)).collect();
            show(out, &entries);
            Ok(ExitStatus::Success)
        }
        AuditCommand::Verify => {
            let report = log.verify()?;
            if out.json() {
                out.json_pretty(&report);
            } else if let Some(b) = &report.broken {
                eprintln!("error: the audit log {} is broken ({}): {}", log.path().display(), b.kind(), b.message());
                eprintln!("  help: entries from that line on cannot be trusted; keep the file as evidence");
            } else {
                out.data(format_args!("audit log intact: {} entries, head at entry {}", report.entries, report.head));
            }
            Ok(ExitStatus::no_unless(report.broken.is_none()))
        }
    }
}

fn show(out: &Printer, entries: &[Entry]) {
    if out.json() {
        out.json_pretty(&serde_json::json!({ "entries": entries }));
        return;
    }
    for e in entries {
        let source = e.source.as_deref().unwrap_or("-");
        let reason = e.reason.as_deref().map(|r| format!("  {r}")).unwrap_or_default();
        println!("{} {:>6} {:<20} {:<22} {} {} {}{reason}", e.time, e.seq, e.actor, e.action, e.target, source, e.outcome.as_str());
    }
}

/// `--since`: an RFC 3339 time, or a duration back from now.
fn parse_since(text: &str, clock: Clock) -> Result<u64, CliError> {
    if let Some(t) = clock::parse_rfc3339(text) {
        return Ok(t);
    }
    let ago = clock::parse_duration(text).map_err(|e| CliError::user(format!("--since: {e}"), Some("or give a time: 2026-01-31T12:00:00Z")))?;
    Ok(clock.now().saturating_sub(ago.as_secs()))
}

/// The clock records are stamped with.
pub(crate) fn clock() -> Result<Clock, CliError> {
    Clock::from_env(|k| std::env::var(k).ok()).map_err(|e| CliError::user(e, Some("unset it: it is for tests only")))
}

/// Log `action` on `target` as started, run `work`, then log how it ended. When the first entry
/// cannot be written nothing runs: galley never acts unlogged.
pub(crate) fn audited(env: &Env, action: &str, target: &str, work: impl FnOnce() -> Outcome) -> Outcome {
    let log = Log::open(&env.home).with_clock(clock()?);
    let event = |outcome| Event::new(Actor::current_user(), action, target, outcome);
    log.append(event(audit_log::Outcome::Started)).map_err(|e| refused(action, &e))?;
    let result = work();
    let (outcome, reason) = match &result {
        Ok(ExitStatus::Success) => (audit_log::Outcome::Ok, None),
        Ok(ExitStatus::No) => (audit_log::Outcome::No, None),
        Ok(_) => (audit_log::Outcome::Failed, None),
        Err(e) => (audit_log::Outcome::Failed, Some(e.line().map_or_else(|| "see the command's output".to_owned(), |(m, _)| m))),
    };
    let mut end = event(outcome);
    end.reason = reason;
    if let Err(e) = log.append(end) {
        return Err(CliError::user(format!("`{action}` ran, but its outcome could not be logged: {e}"), e.help()));
    }
    result
}

fn refused(action: &str, e: &LogError) -> CliError {
    CliError::user(format!("refusing to run `{action}`: {e}"), e.help())
}

impl From<LogError> for CliError {
    fn from(e: LogError) -> Self {
        CliError::User { help: e.help().map(Into::into), message: e.to_string() }
    }
}

/// The target of a command on an instance: `INSTANCE@PROJECT_DIR`.
pub(crate) fn instance_target(env: &Env, instance: &str) -> String {
    let dir = std::path::absolute(&env.project_dir).unwrap_or_else(|_| env.project_dir.clone());
    format!("{instance}@{}", dir.display())
}

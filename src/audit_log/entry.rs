//! One line of the audit log: who did what to what, from where, and how it ended; and the
//! filters `galley audit show` and the admin API select entries with.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::clock::rfc3339;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person at the command line, by login name (or uid when it has none).
    Cli(String),
    /// A caller of the admin API, by token id (never the token).
    Token(String),
    /// A webhook delivery, by its delivery id.
    Github(String),
    /// A caller whose token was refused: no identity is known.
    Anonymous,
    /// `galley serve` acting on its own account (`serve:reconcile`, `serve:queue`).
    Serve(String),
}

impl Actor {
    /// The user running this process: `cli:<login name>`.
    pub fn current_user() -> Actor {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        Actor::Cli(login_name(uid).unwrap_or_else(|| format!("uid-{uid}")))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli(user) => write!(f, "cli:{user}"),
            Actor::Token(id) => write!(f, "token:{id}"),
            Actor::Github(delivery) => write!(f, "github:{delivery}"),
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::Serve(what) => write!(f, "serve:{what}"),
        }
    }
}

/// The login name of `uid` from the password database.
fn login_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwuid_r writes into it and `buf` only.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Written before acting: the action is about to run.
    Started,
    /// The action (or the read) was done.
    Ok,
    /// The action ran and failed, or stopped with an error.
    Failed,
    /// The action ran and its answer was "no" (cancelled, findings, nothing done).
    No,
    /// Refused: no valid credentials, or the wrong scope.
    Denied,
    /// Refused unread: too many failed attempts from the source.
    Throttled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::No => "no",
            Outcome::Denied => "denied",
            Outcome::Throttled => "throttled",
        }
    }
}

/// What a caller records; the log adds time, seq and prev.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    /// Dotted, verb last: `apply`, `secret.set`, `token.create`, `admin.preview.destroy`.
    pub action: String,
    /// What was acted on: an instance, a secret's name, a token id, a preview id.
    pub target: String,
    /// The client's address, for network callers.
    pub source: Option<IpAddr>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

impl Event {
    pub fn new(actor: Actor, action: impl Into<String>, target: impl Into<String>, outcome: Outcome) -> Event {
        Event { actor, action: action.into(), target: target.into(), source: None, outcome, reason: None }
    }

    pub fn source(mut self, source: IpAddr) -> Event {
        self.source = Some(source);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.reason = Some(reason.into());
        self
    }

    pub(super) fn into_entry(self, time: String, seq: u64, prev: String) -> Entry {
        Entry {
            time,
            seq,
            actor: self.actor.to_string(),
            action: self.action,
            target: self.target,
            source: self.source.map(|s| s.to_string()),
            outcome: self.outcome,
            reason: self.reason,
            prev,
        }
    }
}

/// One line, field for field, in the order it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// 1 for the first line, one more for each line after it.
    pub seq: u64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// SHA-256 (hex) of the line before, or [`super::GENESIS`] for the first.
    pub prev: String,
}

impl Entry {
    /// The line's text (without its newline).
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("an entry serializes")
    }

    pub fn parse(line: &str) -> Result<Entry, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }
}

/// SHA-256 (hex) of a line's text, what the next line's `prev` names.
pub fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Which entries to show: each field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Entries at or after this time (seconds since the epoch).
    pub since: Option<u64>,
    /// An actor (`token:abc`), or a kind of actor ending in `:` (`token:`).
    pub actor: Option<String>,
    /// An action (`secret.set`), or a family ending in `.` (`secret.`).
    pub action: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        let word = |want: &Option<String>, have: &str, sep: char| {
            want.as_deref().is_none_or(|w| have == w || (w.ends_with(sep) && have.starts_with(w)))
        };
        let recent = self.since.is_none_or(|since| crate::clock::parse_rfc3339(&e.time).is_some_and(|t| t >= since));
        recent && word(&self.actor, &e.actor, ':') && word(&self.action, &e.action, '.')
    }
}

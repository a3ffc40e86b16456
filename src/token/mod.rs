//! API tokens for the admin API of `galley serve`: created with a scope and a mandatory expiry
//! (at most [`MAX_TTL`]), printed once, and stored in `GALLEY_HOME/tokens.json` (owner-only,
//! written atomically) only as an id, a name, a scope, times and the SHA-256 of the secret part.
//! Rotation issues a new token and leaves the old one valid for a grace period.

mod format;

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use format::{PREFIX, Secret, Token};

use crate::clock::{Clock, Time};
use crate::fsutil;

/// The longest a token may live: 90 days. A leaked token is useful for at most this long.
pub const MAX_TTL: Duration = Duration::from_secs(90 * 86_400);
/// How long a rotated token stays valid when no `--grace` is given.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// The token file under GALLEY_HOME.
pub const FILE: &str = "tokens.json";
const LOCK: &str = "tokens.lock";
const VERSION: u32 = 1;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// List previews, read one preview's status and URL.
    #[serde(rename = "previews:read")]
    PreviewsRead,
    /// And redeploy and destroy previews.
    #[serde(rename = "previews:write")]
    PreviewsWrite,
    /// And read the audit log.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::PreviewsRead, Scope::PreviewsWrite, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PreviewsRead => "previews:read",
            Scope::PreviewsWrite => "previews:write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a scope: use previews:read, previews:write or admin"))
    }
}

/// What is kept of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created: Time,
    pub expires: Time,
    pub last_used: Option<Time>,
    pub revoked: Option<Time>,
    /// The token that replaced this one, when it was rotated.
    pub rotated_to: Option<String>,
    /// SHA-256 (hex) of the secret part.
    pub sha256: String,
}

impl Record {
    /// `active`, `expired`, `revoked` at `now`.
    pub fn state(&self, now: Time) -> &'static str {
        match () {
            _ if self.revoked.is_some() => "revoked",
            _ if now >= self.expires => "expired",
            _ => "active",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    tokens: Vec<Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("--ttl {0}: a token must expire, within at most 90 days")]
    Ttl(String),
    #[error("there is no token with id `{0}`")]
    UnknownId(String),
    #[error("token `{0}` is revoked")]
    AlreadyRevoked(String),
    #[error("the token name `{0}` is empty or has characters other than letters, digits, `-`, `_` and `.`")]
    Name(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a galley token file: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl TokenError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            TokenError::Ttl(_) => Some("give a duration up to 90d: --ttl 30d, --ttl 12h"),
            TokenError::UnknownId(_) | TokenError::AlreadyRevoked(_) => Some("list the tokens with `galley token list`"),
            TokenError::Name(_) => Some("name the token after its user: --name ci-deploy"),
            TokenError::Io { .. } => None,
            TokenError::Corrupt { .. } => Some("restore the file from a backup, or move it aside and create new tokens"),
        }
    }
}

/// Why a presented token was refused (each answered 401 alike; the reason goes to the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a galley token ({0})")]
    Malformed(&'static str),
    #[error("unknown token")]
    Unknown,
    #[error("revoked token")]
    Revoked,
    #[error("expired token")]
    Expired,
}

/// The tokens of one GALLEY_HOME.
#[derive(Debug, Clone)]
pub struct Tokens {
    home: PathBuf,
    clock: Clock,
}

impl Tokens {
    pub fn open(home: &Path, clock: Clock) -> Tokens {
        Tokens { home: home.to_path_buf(), clock }
    }

    /// A fresh token id: 12 hex digits.
    pub fn new_id() -> String {
        hex::encode(rand::random::<[u8; 6]>())
    }

    /// Create token `id`; its text is returned once and never kept.
    pub fn create(&self, id: &str, name: &str, scope: Scope, ttl: Duration) -> Result<(Record, Token), TokenError> {
        check_name(name)?;
        check_ttl(ttl)?;
        self.update(|tokens, now| Ok(issue(tokens, id, name, scope, now, ttl)))
    }

    pub fn list(&self) -> Result<Vec<Record>, TokenError> {
        Ok(self.load()?.tokens)
    }

    pub fn revoke(&self, id: &str) -> Result<Record, TokenError> {
        self.update(|tokens, now| {
            let r = find(tokens, id)?;
            if r.revoked.is_some() {
                return Err(TokenError::AlreadyRevoked(id.to_owned()));
            }
            r.revoked = Some(now);
            Ok(r.clone())
        })
    }

    /// Replace token `id` by `new_id` of the same name, scope and lifetime; the old one stays
    /// valid for `grace` (or until it expired anyway).
    pub fn rotate(&self, id: &str, new_id: &str, grace: Duration) -> Result<(Record, Token), TokenError> {
        check_ttl(grace.max(Duration::from_secs(1)))?;
        self.update(|tokens, now| {
            let old = find(tokens, id)?;
            if old.revoked.is_some() {
                return Err(TokenError::AlreadyRevoked(id.to_owned()));
            }
            let ttl = Duration::from_secs(old.expires.0.saturating_sub(old.created.0)).min(MAX_TTL);
            old.expires = old.expires.min(now.plus(grace));
            old.rotated_to = Some(new_id.to_owned());
            let (name, scope) = (old.name.clone(), old.scope);
            Ok(issue(tokens, new_id, &name, scope, now, ttl))
        })
    }

    /// The record of a presented token, when it is valid now; its last use is recorded.
    pub fn authenticate(&self, presented: &str) -> Result<Result<Record, Refusal>, TokenError> {
        let secret = match Token::parse(presented) {
            Ok(s) => s,
            Err(why) => return Ok(Err(Refusal::Malformed(why))),
        };
        let hash = secret.sha256();
        self.update(|tokens, now| {
            // Compare with every record, in constant time each, so timing tells nothing.
            let mut found = None;
            for (i, r) in tokens.iter().enumerate() {
                if bool::from(r.sha256.as_bytes().ct_eq(hash.as_bytes())) {
                    found = Some(i);
                }
            }
            let Some(i) = found else { return Ok(Err(Refusal::Unknown)) };
            let r = &mut tokens[i];
            match r.state(now) {
                "revoked" => Ok(Err(Refusal::Revoked)),
                "expired" => Ok(Err(Refusal::Expired)),
                _ => {
                    r.last_used = Some(now);
                    Ok(Ok(r.clone()))
                }
            }
        })
    }

    fn path(&self) -> PathBuf {
        self.home.join(FILE)
    }

    fn load(&self) -> Result<File, TokenError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt { path: path.clone(), message: e.to_string() })?;
                if file.version != VERSION {
                    return Err(TokenError::Corrupt { path, message: format!("version {} is not {VERSION}", file.version) });
                }
                Ok(file)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File { version: VERSION, tokens: vec![] }),
            Err(source) => Err(TokenError::Io { path, source }),
        }
    }

    /// Read, change and write the file under its lock.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Record>, Time) -> Result<T, TokenError>) -> Result<T, TokenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TokenError::Io { path, source }
        };
        fs_err::create_dir_all(&self.home).map_err(io(&self.home))?;
        let lock_path = self.home.join(LOCK);
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock_path).map_err(io(&lock_path))?;
        // SAFETY: flock on a valid open descriptor, released when `lock` closes.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(TokenError::Io { path: lock_path, source: std::io::Error::last_os_error() });
        }
        let mut file = self.load()?;
        let before = file.tokens.clone();
        let result = change(&mut file.tokens, self.clock.time());
        if file.tokens != before {
            file.tokens.sort_by(|a, b| a.id.cmp(&b.id));
            let bytes = serde_json::to_vec_pretty(&file).expect("the token file serializes");
            fsutil::write_atomic_mode(&self.path(), &bytes, Some(0o600)).map_err(io(&self.path()))?;
        }
        result
    }
}

fn issue(tokens: &mut Vec<Record>, id: &str, name: &str, scope: Scope, now: Time, ttl: Duration) -> (Record, Token) {
    let token = Token::generate();
    let record = Record {
        id: id.to_owned(),
        name: name.to_owned(),
        scope,
        created: now,
        expires: now.plus(ttl),
        last_used: None,
        revoked: None,
        rotated_to: None,
        sha256: token.secret().sha256(),
    };
    tokens.push(record.clone());
    (record, token)
}

fn find<'a>(tokens: &'a mut [Record], id: &str) -> Result<&'a mut Record, TokenError> {
    tokens.iter_mut().find(|r| r.id == id).ok_or_else(|| TokenError::UnknownId(id.to_owned()))
}

fn check_ttl(ttl: Duration) -> Result<(), TokenError> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(TokenError::Ttl(format!("{}s", ttl.as_secs())));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok { Ok(()) } else { Err(TokenError::Name(name.to_owned())) }
}

#[cfg(test)]
mod tests;

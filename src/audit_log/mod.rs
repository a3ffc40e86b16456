//! The tamper-evident audit log, `GALLEY_HOME/audit.log`: one JSON object per line (time, seq,
//! actor, action, target, source, outcome, reason, prev), each naming the SHA-256 of the line
//! before it, so the lines form a chain. The head (last seq and hash) is kept apart in
//! `audit.head`, so a truncated tail or a line appended by hand shows too.
//!
//! One writer at a time across processes (flock on `audit.lock`); every append is fsynced before
//! it returns, and a caller acts only after its entry is written (fail closed). Entries carry
//! names and ids, never a secret value, a token or a request body.

mod entry;
mod verify;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use entry::{Actor, Entry, Event, Filter, Outcome, hash};
pub use verify::{Break, Report};

use crate::clock::Clock;
use crate::fsutil;

/// The log's file name under GALLEY_HOME.
pub const LOG_FILE: &str = "audit.log";
/// The head: `{"seq":N,"hash":"…"}` of the last line written, replaced atomically.
pub const HEAD_FILE: &str = "audit.head";
/// The lock every writer holds exclusively while it appends.
pub const LOCK_FILE: &str = "audit.lock";
/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write the audit log {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the audit log {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the audit log {0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("the audit log {log} has entries but its head {head} is missing or unreadable")]
    NoHead { log: PathBuf, head: PathBuf },
    #[error("line {line} of the audit log {path} is not an entry: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },
}

impl LogError {
    pub fn help(&self) -> Option<&'static str> {
        Some(match self {
            LogError::Write { .. } | LogError::NotAFile(_) => {
                "galley refuses to act unlogged: make GALLEY_HOME writable (and free some disk space), or fix the file named"
            }
            LogError::NoHead { .. } => "run `galley audit verify`; to start a new chain, move audit.log aside with its head",
            LogError::Read { .. } | LogError::Malformed { .. } => "run `galley audit verify` to find the first broken line",
        })
    }
}

/// The audit log of one GALLEY_HOME.
#[derive(Debug, Clone)]
pub struct Log {
    dir: PathBuf,
    clock: Clock,
}

/// What the head file holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Log {
    /// The log under `home` (created on the first append), stamped by the system clock.
    pub fn open(home: &Path) -> Log {
        Log { dir: home.to_path_buf(), clock: Clock::system() }
    }

    /// Stamp entries with `clock` instead.
    pub fn with_clock(mut self, clock: Clock) -> Log {
        self.clock = clock;
        self
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn head_path(&self) -> PathBuf {
        self.dir.join(HEAD_FILE)
    }

    /// Write `event` as the next entry, durably, and return it. An error means nothing may be
    /// done on its account.
    pub fn append(&self, event: Event) -> Result<Entry, LogError> {
        let path = self.path();
        let write = |source| LogError::Write { path: path.clone(), source };
        fs_err::create_dir_all(&self.dir).map_err(write)?;
        let _lock = self.lock().map_err(write)?;
        let log = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(&path).map_err(write)?;
        let meta = log.metadata().map_err(write)?;
        if !meta.is_file() {
            return Err(LogError::NotAFile(path));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            log.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(write)?;
        }
        let head = match self.head()? {
            Some(head) => head,
            None if meta.len() > 0 => return Err(LogError::NoHead { log: path, head: self.head_path() }),
            None => Head { seq: 0, hash: GENESIS.to_owned() },
        };
        let entry = event.into_entry(entry::rfc3339(self.clock.now()), head.seq + 1, head.hash);
        let line = entry.line();
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        let head = Head { seq: entry.seq, hash: entry::hash(&line) };
        let head_bytes = serde_json::to_vec(&head).expect("the head serializes");
        let written = (&log)
            .write_all(&bytes)
            .and_then(|()| log.sync_data())
            .and_then(|()| fsutil::write_atomic_mode(&self.head_path(), &head_bytes, Some(0o600)));
        if let Err(e) = written {
            // A line without its head (a full disk takes the head's temporary file) would read
            // as appended by hand: take it back, so the chain stays whole.
            let _ = log.set_len(meta.len());
            let _ = log.sync_data();
            return Err(write(e));
        }
        Ok(entry)
    }

    /// The head file, `None` when there is none yet.
    pub fn head(&self) -> Result<Option<Head>, LogError> {
        let path = self.head_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| LogError::NoHead { log: self.path(), head: path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LogError::Read { path, source }),
        }
    }

    /// Every entry, in order (an empty list when there is no log yet).
    pub fn read(&self) -> Result<Vec<Entry>, LogError> {
        let path = self.path();
        let text = self.text()?;
        text.lines()
            .enumerate()
            .map(|(i, l)| Entry::parse(l).map_err(|message| LogError::Malformed { path: path.clone(), line: i + 1, message }))
            .collect()
    }

    /// Walk the chain from the first line to the head and report the first broken link.
    pub fn verify(&self) -> Result<Report, LogError> {
        let text = self.text()?;
        let head = match self.head() {
            Ok(h) => h,
            Err(LogError::NoHead { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(verify::verify(&text, head.as_ref()))
    }

    fn text(&self) -> Result<String, LogError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|e| LogError::Malformed { path, line: 0, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(LogError::Read { path, source }),
        }
    }

    /// The exclusive writer's lock, released when the file closes.
    fn lock(&self) -> std::io::Result<std::fs::File> {
        let path = self.dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path)?;
        // SAFETY: flock on a valid open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(fsutil::with_path(std::io::Error::last_os_error(), &path));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests;

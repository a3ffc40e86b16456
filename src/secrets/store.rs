//! The encrypted per-project secret store: `$GALLEY_HOME/secrets/<project>.json`, mode 0600.
//!
//! Envelope encryption: every record has its own random data key, which seals the value; the data
//! key is sealed ("wrapped") under the master key. Both seals bind the store format version, the
//! project, the secret's name and the record's version as additional data, so a record moved to
//! another name or project, or edited in any byte, fails to open. A key check value (a seal of a
//! fixed string under the master key) lets every command refuse a master key the store was not
//! written with. See docs/secrets.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::crypto::{self, CryptoError, Sealed, SecretKey};
use super::value::SecretValue;

/// The `format` field of every store file.
pub const FORMAT: &str = "galley-secrets";
/// The store format version this galley reads and writes.
pub const VERSION: u32 = 1;
const KEY_CHECK_PLAINTEXT: &[u8] = b"galley secret store key check";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("project name `{0}` cannot name a secret store file")]
    ProjectName(String),
    #[error("invalid secret name `{0}`")]
    BadName(String),
    #[error("cannot access the secret store: {0}")]
    Io(#[from] std::io::Error),
    #[error("the secret store {path} is not valid: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the secret store {path} has format version {found}; this galley reads version {VERSION}")]
    UnknownVersion { path: PathBuf, found: u64 },
    #[error("the secret store {path} belongs to project `{found}`, not `{expected}`")]
    OtherProject { path: PathBuf, found: String, expected: String },
    #[error("GALLEY_MASTER_KEY does not match the secret store {path} (key check failed)")]
    WrongMasterKey { path: PathBuf },
    #[error("no secret named `{0}` in the store")]
    NotFound(String),
    #[error("secret `{0}` failed authentication: its store record was altered, moved or sealed under another key")]
    Tampered(String),
    #[error("no secret store for project `{0}` yet")]
    NoStore(String),
    #[error("the new master key is the same as the current one")]
    SameKey,
}

impl StoreError {
    pub fn help(&self) -> Option<&'static str> {
        Some(match self {
            StoreError::BadName(_) => "start with a letter or underscore, then letters, digits, '_', '.', '-' (at most 64 characters)",
            StoreError::UnknownVersion { .. } => "use the galley release that wrote this store, or a newer one",
            StoreError::WrongMasterKey { .. } => "export the key the store was written with (after `galley secret rotate-master`, the new key)",
            StoreError::NotFound(_) => "set it with `galley secret set NAME`; `galley secret list` shows the names",
            StoreError::Tampered(_) => "set the secret again with `galley secret set NAME`",
            StoreError::NoStore(_) => "create it with `galley secret set NAME`",
            StoreError::SameKey => "generate a new key with `openssl rand -hex 32`",
            _ => return None,
        })
    }
}

/// The file, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFile {
    pub format: String,
    pub version: u64,
    pub project: String,
    pub key_check: Sealed,
    pub secrets: BTreeMap<String, Record>,
}

/// One secret: its data key wrapped under the master key, and its value sealed under the data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// Starts at 1; every `set` of the name increments it.
    pub version: u64,
    pub created: String,
    pub updated: String,
    pub wrapped_key: Sealed,
    pub value: Sealed,
}

/// What `galley secret list` shows: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    pub version: u64,
    pub created: String,
    pub updated: String,
}

/// An opened store whose master key passed the key check.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    project: String,
    master: SecretKey,
    file: StoreFile,
}

impl Store {
    /// `<home>/secrets/<project>.json`.
    pub fn path_for(home: &Path, project: &str) -> Result<PathBuf, StoreError> {
        let safe = !project.is_empty()
            && project.len() <= 64
            && !project.starts_with(['.', '-'])
            && project.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !safe {
            return Err(StoreError::ProjectName(project.to_owned()));
        }
        Ok(home.join("secrets").join(format!("{project}.json")))
    }

    /// Open the project's store, or an empty one if none was written yet (nothing is written
    /// until the first change). Fails when `master` does not match the store.
    pub fn open(home: &Path, project: &str, master: SecretKey) -> Result<Store, StoreError> {
        let path = Store::path_for(home, project)?;
        let file = match read(&path, project, &master)? {
            Some(file) => file,
            None => StoreFile {
                format: FORMAT.to_owned(),
                version: VERSION.into(),
                project: project.to_owned(),
                key_check: key_check(&master, project),
                secrets: BTreeMap::new(),
            },
        };
        Ok(Store { path, project: project.to_owned(), master, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store file exists on disk.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn list(&self) -> Vec<Entry> {
        self.file
            .secrets
            .iter()
            .map(|(name, r)| Entry { name: name.clone(), version: r.version, created: r.created.clone(), updated: r.updated.clone() })
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.file.secrets.contains_key(name)
    }

    /// Decrypt one secret.
    pub fn get(&self, name: &str) -> Result<SecretValue, StoreError> {
        let record = self.file.secrets.get(name).ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        open_record(&self.master, &self.project, name, record)
    }

    /// Seal `value` under `name` with a fresh data key and write the store. Returns the record's
    /// new version.
    pub fn set(&mut self, name: &str, value: &SecretValue) -> Result<u64, StoreError> {
        check_name(name)?;
        let (project, master) = (self.project.clone(), self.master.clone());
        self.update(|file| {
            let now = now_rfc3339();
            let previous = file.secrets.get(name);
            let version = previous.map_or(1, |r| r.version + 1);
            let created = previous.map_or_else(|| now.clone(), |r| r.created.clone());
            let record = seal_record(&master, &project, name, version, value, created, now);
            file.secrets.insert(name.to_owned(), record);
            Ok(version)
        })
    }

    /// Delete one secret and write the store.
    pub fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        self.update(|file| file.secrets.remove(name).map(drop).ok_or_else(|| StoreError::NotFound(name.to_owned())))
    }

    /// Re-wrap every data key under `new` and replace the key check value, writing the whole new
    /// file before renaming it over the old one: an interruption leaves the old store intact.
    /// Returns how many secrets were re-wrapped.
    pub fn rotate(&mut self, new: SecretKey) -> Result<usize, StoreError> {
        if new == self.master {
            return Err(StoreError::SameKey);
        }
        if !self.exists() {
            return Err(StoreError::NoStore(self.project.clone()));
        }
        let (project, old) = (self.project.clone(), self.master.clone());
        let count = self.update(|file| {
            for (name, record) in file.secrets.iter_mut() {
                let aad = key_aad(&project, name, record.version);
                let data_key = crypto::open(&old, &aad, &record.wrapped_key).map_err(|_| StoreError::Tampered(name.clone()))?;
                record.wrapped_key = crypto::seal(&new, &aad, &data_key);
            }
            file.key_check = key_check(&new, &project);
            Ok(file.secrets.len())
        })?;
        self.master = new;
        Ok(count)
    }

    /// Under the store's lock: re-read the file (another process may have changed it), apply
    /// `change` to a copy, write the copy atomically with mode 0600, then keep it.
    fn update<T>(&mut self, change: impl FnOnce(&mut StoreFile) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let dir = self.path.parent().expect("a store path has a parent");
        create_private_dir(dir)?;
        let _lock = lock(&self.path.with_extension("lock"))?;
        let mut file = read(&self.path, &self.project, &self.master)?.unwrap_or_else(|| self.file.clone());
        let out = change(&mut file)?;
        let mut bytes = serde_json::to_vec_pretty(&file).expect("the store serializes");
        bytes.push(b'\n');
        crate::fsutil::write_atomic_mode(&self.path, &bytes, Some(0o600))?;
        self.file = file;
        Ok(out)
    }
}

/// Reject names `galley.ncl` could not refer to (the schema's `SecretName`).
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::BadName(name.to_owned())) }
}

pub(crate) fn value_aad(project: &str, name: &str, version: u64) -> Vec<u8> {
    crypto::aad("galley-secret-value", &[&VERSION.to_be_bytes(), project.as_bytes(), name.as_bytes(), &version.to_be_bytes()])
}

pub(crate) fn key_aad(project: &str, name: &str, version: u64) -> Vec<u8> {
    crypto::aad("galley-secret-data-key", &[&VERSION.to_be_bytes(), project.as_bytes(), name.as_bytes(), &version.to_be_bytes()])
}

fn key_check(master: &SecretKey, project: &str) -> Sealed {
    crypto::seal(master, &crypto::aad("galley-key-check", &[&VERSION.to_be_bytes(), project.as_bytes()]), KEY_CHECK_PLAINTEXT)
}

fn key_check_passes(master: &SecretKey, project: &str, sealed: &Sealed) -> bool {
    let aad = crypto::aad("galley-key-check", &[&VERSION.to_be_bytes(), project.as_bytes()]);
    crypto::open(master, &aad, sealed).is_ok_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
}

pub(crate) fn seal_record(
    master: &SecretKey,
    project: &str,
    name: &str,
    version: u64,
    value: &SecretValue,
    created: String,
    updated: String,
) -> Record {
    let data_key = SecretKey::random();
    Record {
        version,
        created,
        updated,
        wrapped_key: crypto::seal(master, &key_aad(project, name, version), data_key.expose()),
        value: crypto::seal(&data_key, &value_aad(project, name, version), value.expose_secret()),
    }
}

pub(crate) fn open_record(master: &SecretKey, project: &str, name: &str, record: &Record) -> Result<SecretValue, StoreError> {
    let tampered = |_: CryptoError| StoreError::Tampered(name.to_owned());
    let raw_key = crypto::open(master, &key_aad(project, name, record.version), &record.wrapped_key).map_err(tampered)?;
    let data_key = SecretKey::from_bytes(&raw_key).ok_or_else(|| StoreError::Tampered(name.to_owned()))?;
    let value = crypto::open(&data_key, &value_aad(project, name, record.version), &record.value).map_err(tampered)?;
    Ok(SecretValue::from(value))
}

/// Parse and verify the file at `path`; `None` when it does not exist.
fn read(path: &Path, project: &str, master: &SecretKey) -> Result<Option<StoreFile>, StoreError> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_owned(), detail };
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if header.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(corrupt(format!("`format` is not \"{FORMAT}\"")));
    }
    match header.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(found) => return Err(StoreError::UnknownVersion { path: path.to_owned(), found }),
        None => return Err(corrupt("`version` is missing".into())),
    }
    let file: StoreFile = serde_json::from_value(header).map_err(|e| corrupt(e.to_string()))?;
    if file.project != project {
        return Err(StoreError::OtherProject { path: path.to_owned(), found: file.project, expected: project.to_owned() });
    }
    if !key_check_passes(master, project, &file.key_check) {
        return Err(StoreError::WrongMasterKey { path: path.to_owned() });
    }
    Ok(Some(file))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))
}

/// An exclusive advisory lock on `path`, released when the file is closed.
fn lock(path: &Path) -> std::io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let file = fs_err::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
    // SAFETY: flock on a file descriptor this function owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("cannot lock {}: {e}", path.display())));
    }
    Ok(file)
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub fn rfc3339(secs: u64) -> String {
    crate::clock::rfc3339(secs)
}

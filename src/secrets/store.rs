//! The encrypted per-project secret store: `$GALLEY_HOME/secrets/<project>.json`, mode 0600.
//!
//! Envelope encryption: every record has its own random data key, which seals the value; the data
//! key is sealed ("wrapped") under the master key. Both seals bind the store format version, the
//! project, the secret's name and the record's version as additional data, so a record moved to
//! another name or project, or edited in any byte, fails to open. A key check value (a seal of a
//! fixed string under the master key) lets every command refuse a master key the store was not
//! written with. See docs/secrets.md.
//!
//! An authenticated index (a seal under the master key of every record's name, version and
//! SHA-256) is rewritten with each change, so a single record replaced by an older copy of
//! itself, or removed, or added, is refused by name (`RolledBack`). A store with an index has
//! its key check under another label than a store written before the index, so the index cannot
//! be stripped to pass the file off as an older one.

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
/// The key check's label in a store without an index (written before the index existed).
pub(crate) const LEGACY_KEY_CHECK: &str = "galley-key-check";
/// The key check's label in a store with an index.
const INDEXED_KEY_CHECK: &str = "galley-key-check-indexed";

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
    #[error(
        "secret `{name}` in the store is not the record galley last wrote ({detail}): it was replaced, perhaps with an older copy of itself"
    )]
    RolledBack { name: String, detail: String },
    #[error(
        "the secret store {path} has lost its index: it was written with one, which was removed"
    )]
    IndexRemoved { path: PathBuf },
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
            StoreError::RolledBack { .. } => {
                "set the secret again with `galley secret set NAME` (its right value), or restore the store file from a copy you trust"
            }
            StoreError::IndexRemoved { .. } => {
                "restore the store file from a copy you trust, or remove it and set the secrets again"
            }
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
    /// The sealed [`Index`]; absent only in a store written before the index existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Sealed>,
}

/// What the index holds for each name: the record's version and the SHA-256 of its JSON.
type Index = BTreeMap<String, (u64, String)>;

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
    /// The opened index; `None` for a store written before the index existed.
    index: Option<Index>,
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
        let (file, index) = match read(&path, project, &master)? {
            Some(read) => read,
            None => (
                StoreFile {
                    format: FORMAT.to_owned(),
                    version: VERSION.into(),
                    project: project.to_owned(),
                    key_check: key_check(&master, project, INDEXED_KEY_CHECK),
                    secrets: BTreeMap::new(),
                    index: None,
                },
                Some(Index::new()),
            ),
        };
        Ok(Store {
            path,
            project: project.to_owned(),
            master,
            file,
            index,
        })
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
        let Some(record) = self.file.secrets.get(name) else {
            return Err(match check_indexed(self.index.as_ref(), name, None) {
                Err(rolled_back) => rolled_back,
                Ok(()) => StoreError::NotFound(name.to_owned()),
            });
        };
        let value = open_record(&self.master, &self.project, name, record)?;
        check_indexed(self.index.as_ref(), name, Some(record))?;
        Ok(value)
    }

    /// Seal `value` under `name` with a fresh data key and write the store. Returns the record's
    /// new version.
    pub fn set(&mut self, name: &str, value: &SecretValue) -> Result<u64, StoreError> {
        check_name(name)?;
        let (project, master) = (self.project.clone(), self.master.clone());
        self.update(
            |file| {
                let now = now_rfc3339();
                let previous = file.secrets.get(name);
                let version = previous.map_or(1, |r| r.version + 1);
                let created = previous.map_or_else(|| now.clone(), |r| r.created.clone());
                let record = seal_record(&master, &project, name, version, value, created, now);
                file.secrets.insert(name.to_owned(), record);
                Ok(version)
            },
            Some(name),
            &master,
        )
    }

    /// Delete one secret and write the store.
    pub fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        let master = self.master.clone();
        self.update(
            |file| {
                file.secrets
                    .remove(name)
                    .map(drop)
                    .ok_or_else(|| StoreError::NotFound(name.to_owned()))
            },
            Some(name),
            &master,
        )
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
        let count = self.update(
            |file| {
                for (name, record) in file.secrets.iter_mut() {
                    let aad = key_aad(&project, name, record.version);
                    let data_key = crypto::open(&old, &aad, &record.wrapped_key)
                        .map_err(|_| StoreError::Tampered(name.clone()))?;
                    record.wrapped_key = crypto::seal(&new, &aad, &data_key);
                }
                Ok(file.secrets.len())
            },
            None,
            &new,
        )?;
        self.master = new;
        Ok(count)
    }

    /// Under the store's lock: re-read the file (another process may have changed it), apply
    /// `change` to a copy, write the copy atomically with mode 0600 with a new index, then keep
    /// it; the key check and the index are sealed under `key` (the new key when rotating).
    /// Every record but `replaced` (the one name the change sets or removes) must match the
    /// index read, so a change never blesses a record rolled back behind galley's back.
    fn update<T>(
        &mut self,
        change: impl FnOnce(&mut StoreFile) -> Result<T, StoreError>,
        replaced: Option<&str>,
        key: &SecretKey,
    ) -> Result<T, StoreError> {
        let dir = self.path.parent().expect("a store path has a parent");
        create_private_dir(dir)?;
        let _lock = lock(&self.path.with_extension("lock"))?;
        let (mut file, index) = read(&self.path, &self.project, &self.master)?
            .unwrap_or_else(|| (self.file.clone(), Some(Index::new())));
        // Checked on the file as read; reported after the change's own errors (a record that
        // fails authentication is named as such first).
        let mut inconsistent = Ok(());
        if let Some(index) = &index {
            let names: std::collections::BTreeSet<&String> =
                index.keys().chain(file.secrets.keys()).collect();
            inconsistent = names
                .into_iter()
                .filter(|n| Some(n.as_str()) != replaced)
                .try_for_each(|name| check_indexed(Some(index), name, file.secrets.get(name)));
        }
        let out = change(&mut file)?;
        inconsistent?;
        file.key_check = key_check(key, &self.project, INDEXED_KEY_CHECK);
        let new_index = index_of(&file);
        file.index = Some(seal_index(key, &self.project, &new_index));
        let mut bytes = serde_json::to_vec_pretty(&file).expect("the store serializes");
        bytes.push(b'\n');
        crate::fsutil::write_atomic_mode(&self.path, &bytes, Some(0o600))?;
        self.file = file;
        self.index = Some(new_index);
        Ok(out)
    }
}

/// The SHA-256 of a record as written: any change to any of its fields changes it.
fn record_digest(record: &Record) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        serde_json::to_vec(record).expect("a record serializes"),
    ))
}

fn index_of(file: &StoreFile) -> Index {
    file.secrets
        .iter()
        .map(|(name, r)| (name.clone(), (r.version, record_digest(r))))
        .collect()
}

fn index_aad(project: &str) -> Vec<u8> {
    crypto::aad(
        "galley-secret-index",
        &[&VERSION.to_be_bytes(), project.as_bytes()],
    )
}

fn seal_index(master: &SecretKey, project: &str, index: &Index) -> Sealed {
    crypto::seal(
        master,
        &index_aad(project),
        &serde_json::to_vec(index).expect("the index serializes"),
    )
}

/// `record` (or its absence) is what the index says of `name`; always true without an index.
fn check_indexed(
    index: Option<&Index>,
    name: &str,
    record: Option<&Record>,
) -> Result<(), StoreError> {
    let Some(index) = index else { return Ok(()) };
    let rolled_back = |detail: String| {
        Err(StoreError::RolledBack {
            name: name.to_owned(),
            detail,
        })
    };
    match (index.get(name), record) {
        (None, None) => Ok(()),
        (Some((version, digest)), Some(r))
            if *version == r.version && *digest == record_digest(r) =>
        {
            Ok(())
        }
        (Some((version, _)), Some(r)) if *version != r.version => rolled_back(format!(
            "version {} found, the store's index says version {version}",
            r.version
        )),
        (Some((version, _)), Some(_)) => {
            rolled_back(format!("version {version} but not its contents"))
        }
        (Some((version, _)), None) => {
            rolled_back(format!("its record, version {version}, was removed"))
        }
        (None, Some(r)) => rolled_back(format!(
            "a record, version {}, the index does not list",
            r.version
        )),
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

pub(crate) fn key_check(master: &SecretKey, project: &str, label: &str) -> Sealed {
    crypto::seal(
        master,
        &crypto::aad(label, &[&VERSION.to_be_bytes(), project.as_bytes()]),
        KEY_CHECK_PLAINTEXT,
    )
}

fn key_check_passes(master: &SecretKey, project: &str, sealed: &Sealed, label: &str) -> bool {
    let aad = crypto::aad(label, &[&VERSION.to_be_bytes(), project.as_bytes()]);
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

/// Parse and verify the file at `path`, with its opened index (`None` for a store written before
/// the index existed); `None` when it does not exist.
fn read(
    path: &Path,
    project: &str,
    master: &SecretKey,
) -> Result<Option<(StoreFile, Option<Index>)>, StoreError> {
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
    let indexed = key_check_passes(master, project, &file.key_check, INDEXED_KEY_CHECK);
    let index = match (&file.index, indexed) {
        (Some(sealed), true) => {
            let bytes = crypto::open(master, &index_aad(project), sealed).map_err(|_| {
                corrupt(
                    "the index failed authentication: it was altered or moved from another store"
                        .into(),
                )
            })?;
            Some(
                serde_json::from_slice::<Index>(&bytes)
                    .map_err(|e| corrupt(format!("the index: {e}")))?,
            )
        }
        (None, true) => {
            return Err(StoreError::IndexRemoved {
                path: path.to_owned(),
            });
        }
        (Some(_), false)
            if key_check_passes(master, project, &file.key_check, LEGACY_KEY_CHECK) =>
        {
            return Err(corrupt(
                "an index was added to a store written without one".into(),
            ));
        }
        (None, false) if key_check_passes(master, project, &file.key_check, LEGACY_KEY_CHECK) => {
            None
        }
        _ => {
            return Err(StoreError::WrongMasterKey {
                path: path.to_owned(),
            });
        }
    };
    Ok(Some((file, index)))
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

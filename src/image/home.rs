//! What `GALLEY_HOME` knows of itself for `galley gc`: the projects galley built or applied there
//! (one small record per project directory) and the lock that keeps gc apart from every command
//! writing to the store and the caches.
//!
//! Writers (build, lock, apply, load, push) hold `GALLEY_HOME/gc.lock` shared (flock) for as long
//! as they write and until what they wrote is named by a lock or used by a container; a writer
//! waits while gc runs. gc takes it exclusive and never waits: when a writer holds it, gc fails at
//! once (see [`exclusive`]).

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::StoreError;
use crate::domain::Digest;

/// The lock file under `GALLEY_HOME`.
pub const LOCK_FILE: &str = "gc.lock";
/// The directory of project records under `GALLEY_HOME`.
pub const PROJECTS_DIR: &str = "projects";

/// A held flock on `GALLEY_HOME/gc.lock`, released on drop.
#[derive(Debug)]
pub struct HomeLock {
    _file: fs::File,
}

/// One project galley built or applied: its canonical directory and its name when last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub dir: String,
    pub name: String,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

fn lock_file(home: &Path) -> Result<fs::File, StoreError> {
    fs::create_dir_all(home).map_err(io_err(home))?;
    let path = home.join(LOCK_FILE);
    fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))
}

fn flock(home: &Path, op: libc::c_int) -> Result<Option<HomeLock>, StoreError> {
    let file = lock_file(home)?;
    // SAFETY: flock on a valid open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(Some(HomeLock { _file: file }));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        return Ok(None);
    }
    Err(StoreError::Io { path: home.join(LOCK_FILE), source: e })
}

/// Hold the home shared (waiting while a gc runs).
pub fn shared(home: &Path) -> Result<HomeLock, StoreError> {
    Ok(flock(home, libc::LOCK_SH)?.expect("a blocking flock returns only when held"))
}

/// Hold the home exclusive, without waiting: `None` when a writer holds it.
pub fn exclusive(home: &Path) -> Result<Option<HomeLock>, StoreError> {
    flock(home, libc::LOCK_EX | libc::LOCK_NB)
}

/// Hold the home shared for writing, and record `project_dir` as the project `name`.
pub fn writing(home: &Path, project_dir: &Path, name: &str) -> Result<HomeLock, StoreError> {
    let lock = shared(home)?;
    record(home, project_dir, name)?;
    Ok(lock)
}

/// Record `project_dir` (made absolute and canonical) as the project `name`: one file per
/// directory, named by the hash of its path and written atomically, so concurrent writers never
/// meet. A directory whose path is not UTF-8 is not recorded.
pub fn record(home: &Path, project_dir: &Path, name: &str) -> Result<(), StoreError> {
    let dir = fs::canonicalize(project_dir).map_err(io_err(project_dir))?;
    let Some(dir) = dir.to_str() else { return Ok(()) };
    let bytes = crate::canonical::to_vec(&ProjectRecord { dir: dir.to_owned(), name: name.to_owned() });
    let path = record_path(home, dir);
    if fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let parent = home.join(PROJECTS_DIR);
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    crate::fsutil::write_atomic(&path, &bytes).map_err(io_err(&path))
}

fn record_path(home: &Path, dir: &str) -> PathBuf {
    let hash = Digest::of(dir.as_bytes());
    home.join(PROJECTS_DIR).join(format!("{}.json", hash.hex()))
}

/// Every recorded project, sorted by directory. A record that does not parse is skipped.
pub fn recorded(home: &Path) -> Result<Vec<ProjectRecord>, StoreError> {
    let dir = home.join(PROJECTS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Io { path: dir, source: e }),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(io_err(&dir))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        if let Some(r) = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<ProjectRecord>(&b).ok()) {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

/// The name recorded for `project_dir`, when it has a record that names it: the project's name
/// when galley last built or applied it there. A hint only; the evaluated config decides.
pub fn recorded_name(home: &Path, project_dir: &Path) -> Option<String> {
    let dir = fs::canonicalize(project_dir).ok()?;
    let bytes = fs::read(record_path(home, dir.to_str()?)).ok()?;
    serde_json::from_slice::<ProjectRecord>(&bytes).ok().filter(|r| Path::new(&r.dir) == dir).map(|r| r.name)
}

/// Drop the record of `dir`.
pub fn forget(home: &Path, dir: &str) -> Result<(), StoreError> {
    let path = record_path(home, dir);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_canonical_one_per_directory_and_forgettable() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        fs::create_dir(project.path().join("sub")).unwrap();
        // The same directory reached two ways is one record, by its canonical path.
        record(home.path(), project.path(), "a").unwrap();
        record(home.path(), &project.path().join("sub/.."), "b").unwrap();
        let all = recorded(home.path()).unwrap();
        let canonical = fs::canonicalize(project.path()).unwrap();
        assert_eq!(all, vec![ProjectRecord { dir: canonical.to_str().unwrap().into(), name: "b".into() }]);
        assert_eq!(recorded_name(home.path(), &project.path().join("sub/..")).as_deref(), Some("b"));
        assert_eq!(recorded_name(home.path(), &project.path().join("sub")), None);
        forget(home.path(), &all[0].dir).unwrap();
        assert!(recorded(home.path()).unwrap().is_empty());
        assert_eq!(recorded_name(home.path(), project.path()), None);
    }

    #[test]
    fn gc_cannot_take_the_home_while_a_writer_holds_it() {
        let home = tempfile::tempdir().unwrap();
        let writer = shared(home.path()).unwrap();
        let second = shared(home.path()).unwrap();
        assert!(exclusive(home.path()).unwrap().is_none());
        drop((writer, second));
        let gc = exclusive(home.path()).unwrap().expect("free once the writers are done");
        assert!(exclusive(home.path()).unwrap().is_none());
        drop(gc);
    }
}

//! Seccomp profiles: the standard library's named profiles and custom ones, as the JSON podman
//! reads, with a content digest recorded in the lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;


use crate::domain::{Digest, SeccompChoice};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot evaluate seccomp profile `{name}`: {message}")]
    Eval { name: String, message: String },
}

/// A resolved profile: its name for people, its canonical JSON and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub json: serde_json::Value,
    pub digest: Digest,
}

impl Profile {
    /// Canonical bytes, as written to disk for podman.
    pub fn bytes(&self) -> Vec<u8> {
        crate::canonical::to_vec(&self.json)
    }
}

/// Named profiles already evaluated in this process, by library root. The library directory is
/// named by its content hash, so an entry never goes stale.
static EVALUATED: Mutex<Vec<(PathBuf, String, serde_json::Value)>> = Mutex::new(Vec::new());

/// Resolve a sandbox's seccomp choice. `None` means unconfined. Each named profile is evaluated
/// once per library (then read from [`evaluated_path`]) and read once per process, however many
/// sandboxes use it.
pub fn resolve(lib_root: &Path, choice: &SeccompChoice) -> Result<Option<Profile>, SeccompError> {
    let json = match choice {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Custom(json) => json.clone(),
        library => named(lib_root, library.name())?,
    };
    let name = choice.name().to_owned();
    let json = crate::canonical::to_value(&json);
    let digest = Digest::of(&crate::canonical::to_vec(&json));
    Ok(Some(Profile { name, json, digest }))
}

fn named(lib_root: &Path, name: &str) -> Result<serde_json::Value, SeccompError> {
    let cached = EVALUATED.lock().expect("seccomp cache").iter().find(|(root, n, _)| root == lib_root && n == name).map(|e| e.2.clone());
    if let Some(json) = cached {
        return Ok(json);
    }
    let file = evaluated_path(lib_root, name);
    let json = match std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
        Some(json) => json,
        None => {
            let expr = format!("import \"seccomp/{name}.ncl\"");
            let json = crate::lang::eval_library_json(lib_root, &expr)
                .map_err(|message| SeccompError::Eval { name: name.to_owned(), message })?;
            // Only a cache: when it cannot be written, the profile is evaluated again next time.
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir).and_then(|()| crate::fsutil::write_atomic(&file, &crate::canonical::to_vec(&json)));
            }
            json
        }
    };
    EVALUATED.lock().expect("seccomp cache").push((lib_root.to_path_buf(), name.to_owned(), json.clone()));
    Ok(json)
}

/// Where a named profile's JSON is kept once evaluated: beside the library it was evaluated
/// from, whose directory is named by the library's content hash, so it never goes stale and a
/// command that needs the profile (`lock --check`, `plan`, `apply`) does not evaluate Nickel.
fn evaluated_path(lib_root: &Path, name: &str) -> PathBuf {
    lib_root.join(crate::lang::embedded::content_hash()).join("evaluated").join(format!("seccomp-{name}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles_are_evaluated_once_and_never_mixed_up() {
        let home = tempfile::tempdir().unwrap();
        let named = |n: &str| resolve(home.path(), &SeccompChoice::named(n).unwrap()).unwrap().unwrap();
        let default = named("default");
        let strict = named("strict");
        assert_ne!(default.digest, strict.digest);
        assert_eq!(named("default"), default);
        assert_eq!(named("strict"), strict);
        let names = |p: &Profile| p.json["syscalls"].as_array().unwrap().iter().any(|r| r["names"].as_array().unwrap().iter().any(|n| n == "ptrace"));
        assert!(names(&default) && !names(&strict), "strict denies ptrace, default allows it");
        assert_eq!(resolve(home.path(), &SeccompChoice::Unconfined).unwrap(), None);
        assert!(SeccompChoice::named("nope").is_err(), "an unknown name never reaches resolve");
    }

    #[test]
    fn a_named_profile_is_kept_beside_its_library_and_a_damaged_copy_is_evaluated_again() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let strict = SeccompChoice::named("strict").unwrap();
        let evaluated = resolve(first.path(), &strict).unwrap().unwrap();
        let kept = std::fs::read(evaluated_path(first.path(), "strict")).unwrap();
        assert_eq!(kept, evaluated.bytes());
        let damaged = evaluated_path(second.path(), "strict");
        crate::lang::embedded::materialize(second.path()).unwrap();
        std::fs::create_dir_all(damaged.parent().unwrap()).unwrap();
        std::fs::write(&damaged, b"{\"defaultAction\": tru").unwrap();
        assert_eq!(resolve(second.path(), &strict).unwrap().unwrap(), evaluated);
        assert_eq!(std::fs::read(&damaged).unwrap(), evaluated.bytes());
    }
}

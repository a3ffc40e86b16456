//! The last applied manifest of each sandbox, kept under
//! `GALLEY_HOME/state/<project>/<instance>/<sandbox>.json` so `plan` can say which fields a
//! replacement changes. The container's `io.galley.manifest` label stays the source of truth:
//! a state file whose digest does not match it is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::naming::Instance;
use super::{Result, RuntimeError};
use crate::manifest::SandboxManifest;

/// The last applied manifest of `sandbox`, if recorded and still matching `digest`.
pub fn read(home: &Path, instance: &Instance, sandbox: &str, digest: &str) -> Option<SandboxManifest> {
    let path = instance.state_dir(home).join(format!("{sandbox}.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let m: SandboxManifest = serde_json::from_str(&text).ok()?;
    (m.digest().to_string() == digest).then_some(m)
}

pub fn write(home: &Path, instance: &Instance, m: &SandboxManifest) -> Result<()> {
    let dir = instance.state_dir(home);
    fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    let path = dir.join(format!("{}.json", m.sandbox));
    let text = crate::canonical::to_string_pretty(m) + "\n";
    crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(RuntimeError::io(&path))
}

pub fn remove(home: &Path, instance: &Instance, sandbox: &str) {
    let _ = std::fs::remove_file(instance.state_dir(home).join(format!("{sandbox}.json")));
    let _ = std::fs::remove_file(pidfile(home, instance, sandbox));
}

/// Where podman writes the pid of the sandbox's first process as it starts it.
pub fn pidfile(home: &Path, instance: &Instance, sandbox: &str) -> PathBuf {
    instance.state_dir(home).join(format!("{sandbox}.pid"))
}

/// An exclusive lock on the instance, held while `apply` or `destroy` changes it, so two galley
/// processes never converge the same instance at once. Released on drop.
pub struct InstanceLock(#[allow(dead_code)] std::fs::File);

pub fn lock(home: &Path, instance: &Instance) -> Result<InstanceLock> {
    use std::os::fd::AsRawFd;
    let dir = home.join("state").join(&instance.project);
    fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    let path = dir.join(format!("{}.lock", instance.instance));
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(RuntimeError::io(&path))?;
    // SAFETY: the descriptor is valid for the lifetime of `file`.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(RuntimeError::Other(format!(
            "instance `{}` is being changed by another galley process (lock {})",
            instance.instance,
            path.display()
        )));
    }
    Ok(InstanceLock(file))
}

/// Remove the instance's whole state directory.
pub fn remove_all(home: &Path, instance: &Instance) {
    let _ = std::fs::remove_dir_all(instance.state_dir(home));
}

/// One changed field: dotted path, old and new values as compact JSON (`None` when absent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The fields that differ between two manifests, by dotted path.
pub fn diff(old: &SandboxManifest, new: &SandboxManifest) -> Vec<Change> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &crate::canonical::to_value(old), &mut a);
    flatten("", &crate::canonical::to_value(new), &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change { field: k.clone(), old: a.get(k).cloned(), new: b.get(k).cloned() })
        .collect()
}

/// Leaves by path; arrays of scalars and arrays of records stay whole (`ports`, `tmpfs`).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

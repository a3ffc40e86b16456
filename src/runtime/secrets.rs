//! Secret values for apply: every source (host env, file, command, the encrypted store) resolved
//! through [`crate::secrets::resolve`]. The store is opened only when a sandbox names a store
//! key, so projects without one need no master key. Values live in zeroized memory only.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::SecretSource;
use crate::exec::Runner;
use crate::model::{Project, Secret};
use crate::secrets::{self, Store};

/// Resolves the secrets of one project.
pub struct ProjectSecrets<'a> {
    pub project_dir: PathBuf,
    pub store: Option<Store>,
    pub runner: &'a dyn Runner,
}

impl<'a> ProjectSecrets<'a> {
    /// Open the project's store when any sandbox uses it (this needs `GALLEY_MASTER_KEY`).
    pub fn open(home: &std::path::Path, project_dir: PathBuf, project: &Project, runner: &'a dyn Runner) -> Result<Self, String> {
        let uses_store = project.sandboxes.values().flat_map(|s| s.secrets.values()).any(|s| matches!(s, Secret::Store(_)));
        let store = if uses_store {
            let key = secrets::master_key().map_err(|e| e.to_string())?;
            Some(Store::open(home, &project.name, key).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(ProjectSecrets { project_dir, store, runner })
    }
}

impl SecretSource for ProjectSecrets<'_> {
    fn value(&self, name: &str, secret: &Secret) -> Result<Zeroizing<Vec<u8>>, String> {
        let value = secrets::resolve(&self.project_dir, name, secret, self.store.as_ref(), self.runner).map_err(|e| e.to_string())?;
        Ok(Zeroizing::new(value.expose().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::System;

    #[test]
    fn every_host_source_resolves_and_failures_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file").unwrap();
        let s = ProjectSecrets { project_dir: dir.path().into(), store: None, runner: &System };
        assert_eq!(s.value("A", &Secret::File("token".into())).unwrap().as_slice(), b"from-file");
        let cmd = Secret::Command(vec!["printf".into(), "from-command\n".into()]);
        assert_eq!(s.value("A", &cmd).unwrap().as_slice(), b"from-command");
        // The printed text is not in argv, so an error that contained it would be a leak.
        let failing = Secret::Command(vec!["sh".into(), "-c".into(), "printf lea''ked; exit 3".into()]);
        let err = s.value("A", &failing).unwrap_err();
        assert!(!err.contains("leaked"), "{err}");
        assert!(s.value("A", &Secret::Store("K".into())).is_err(), "no store, no value");
    }
}

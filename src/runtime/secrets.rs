//! Secret values from the host: environment variables, files and commands. The encrypted store
//! plugs in through the same [`SecretSource`] trait. Values live in zeroized memory only.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::SecretSource;
use crate::exec::{Cmd, Runner};
use crate::model::Secret;

/// Resolves `env`, `file` and `command` secrets on the host.
pub struct HostSecrets<'a> {
    pub project_dir: PathBuf,
    pub home_dir: Option<PathBuf>,
    pub runner: &'a dyn Runner,
}

impl SecretSource for HostSecrets<'_> {
    fn value(&self, _name: &str, secret: &Secret) -> Result<Zeroizing<Vec<u8>>, String> {
        match secret {
            Secret::Env(var) => match std::env::var_os(var) {
                Some(v) => Ok(Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v))),
                None => Err(format!("environment variable {var} is not set")),
            },
            Secret::File(path) => {
                let path = match (path.strip_prefix("~/"), &self.home_dir) {
                    (Some(rest), Some(home)) => home.join(rest),
                    _ => self.project_dir.join(path),
                };
                std::fs::read(&path).map(Zeroizing::new).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            Secret::Command(argv) => {
                let [program, args @ ..] = argv.as_slice() else { return Err("empty command".into()) };
                let cmd = Cmd::new(program).args(args).cwd(&self.project_dir);
                // The command's output is the value: report failures by status only.
                let out = self.runner.run(&cmd).map_err(|e| e.to_string())?;
                let mut value = Zeroizing::new(out.stdout);
                if out.code != Some(0) {
                    return Err(format!("`{program}` failed ({:?})", out.code));
                }
                if value.last() == Some(&b'\n') {
                    value.pop();
                }
                Ok(value)
            }
            Secret::Store(key) => Err(format!("store key {key}: the secret store is not available in this build")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::System;

    #[test]
    fn file_command_and_env_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file").unwrap();
        let s = HostSecrets { project_dir: dir.path().into(), home_dir: Some(dir.path().into()), runner: &System };
        assert_eq!(s.value("A", &Secret::File("token".into())).unwrap().as_slice(), b"from-file");
        assert_eq!(s.value("A", &Secret::File("~/token".into())).unwrap().as_slice(), b"from-file");
        let cmd = Secret::Command(vec!["printf".into(), "from-command\n".into()]);
        assert_eq!(s.value("A", &cmd).unwrap().as_slice(), b"from-command");
        let failing = Secret::Command(vec!["sh".into(), "-c".into(), "printf leaked; exit 3".into()]);
        let err = s.value("A", &failing).unwrap_err();
        assert!(!err.contains("leaked"), "{err}");
        let missing = s.value("A", &Secret::Env("GALLEY_TEST_SURELY_UNSET_VARIABLE".into())).unwrap_err();
        assert!(missing.contains("is not set"), "{missing}");
        assert!(s.value("A", &Secret::Store("K".into())).is_err());
    }
}

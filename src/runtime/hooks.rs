//! Secret files exist only while their container runs. Every sandbox with secrets is created
//! with podman's `--hooks-dir GALLEY_HOME/hooks` and the annotation
//! `io.galley.secrets=<project>/<instance>/<sandbox>`; the hook there (OCI hooks 1.0.0, stage
//! `poststop`) runs `galley __secrets-stopped GALLEY_HOME` whenever podman cleans up after the
//! container stopped, for any reason: `podman stop`, the command exiting by itself, a kill, or
//! `podman rm`. podman records the hook with the container, so it runs whichever podman process
//! cleans up (conmon's exit command included), with no galley process left waiting. A hook rather
//! than podman's exit command (internal to podman, not settable per container) or a supervisor
//! (a process of galley's that must outlive it and can die). The files come back only through
//! `galley apply`, which replaces a stopped sandbox; `podman start` by hand fails on the missing
//! secret file instead of running without it. runc's words for that failure do not name the file
//! (podman 4.3 with runc says "can't get final child's PID from pipe: EOF"), so `galley plan`
//! and `apply` say, for a stopped sandbox with secrets, that only `galley apply` starts it again.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::naming::Instance;
use super::secrets_dir::SecretsDir;
use super::{Result, RuntimeError};
use crate::domain::Name;

/// The annotation naming the sandbox whose secrets the hook removes.
pub const ANNOTATION: &str = "io.galley.secrets";

/// The hidden galley command podman runs as the hook.
pub const COMMAND: &str = "__secrets-stopped";

/// The largest container state the hook reads from its standard input.
pub const MAX_STATE_BYTES: u64 = 1 << 20;

const HOOK_FILE: &str = "galley-secrets.json";

/// `GALLEY_HOME/hooks`, podman's `--hooks-dir` for galley's sandboxes.
pub fn dir(home: &Path) -> PathBuf {
    home.join("hooks")
}

/// The annotation's value for `sandbox` of `instance`.
pub fn annotation(instance: &Instance, sandbox: &str) -> String {
    format!("{}/{}/{sandbox}", instance.project, instance.instance)
}

/// Write the hook, naming this galley binary, unless it is there already; returns the
/// directory to pass as `--hooks-dir`.
pub fn install(home: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| RuntimeError::Other(format!("cannot find galley's own binary for the secrets hook: {e}")))?;
    let dir = dir(home);
    let hook = serde_json::json!({
        "version": "1.0.0",
        "hook": { "path": exe, "args": ["galley", COMMAND, home] },
        "when": { "annotations": { format!("^{}$", regex_escape(ANNOTATION)): "." } },
        "stages": ["poststop"],
    });
    let text = crate::canonical::to_string_pretty(&hook) + "\n";
    let path = dir.join(HOOK_FILE);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        fs_err::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
        crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(RuntimeError::io(&path))?;
    }
    Ok(dir)
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// The hook itself: read the stopped container's OCI state from `state` (at most
/// [`MAX_STATE_BYTES`]), and remove the secret files of the sandbox its annotation names,
/// unless a successor container has claimed them since.
pub fn stopped(home: &Path, state: impl Read) -> Result<Option<PathBuf>> {
    let mut bytes = Vec::new();
    state.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes).map_err(RuntimeError::io("stdin"))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(RuntimeError::Other(format!("the container state is larger than {MAX_STATE_BYTES} bytes")));
    }
    let state: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Parse { command: "hook state".into(), message: e.to_string() })?;
    let Some(value) = state.pointer("/annotations").and_then(|a| a.get(ANNOTATION)).and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let parts: Vec<&str> = value.split('/').collect();
    let [project, instance, sandbox] = parts[..] else {
        return Err(RuntimeError::Other(format!("annotation {ANNOTATION}=\"{value}\" is not <project>/<instance>/<sandbox>")));
    };
    if ![project, instance, sandbox].iter().all(|n| Name::is_valid(n)) {
        return Err(RuntimeError::Other(format!("annotation {ANNOTATION}=\"{value}\" holds an invalid name")));
    }
    let secrets = SecretsDir::new(Instance::new(project, instance)?.run_dir(home));
    let id = state.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    if secrets.claimed_by_another(sandbox, id) {
        return Ok(None);
    }
    secrets.remove_sandbox(sandbox);
    Ok(Some(secrets.sandbox_dir(sandbox)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    #[test]
    fn the_hook_removes_only_the_annotated_sandboxs_files_and_spares_a_successors() {
        let home = tempfile::tempdir().unwrap();
        let instance = Instance::new("web", "pr-1").unwrap();
        let secrets = SecretsDir::new(instance.run_dir(home.path()));
        for sandbox in ["api", "db"] {
            secrets.write(sandbox, "TOKEN", &SecretValue::new(b"value".to_vec())).unwrap();
        }
        secrets.claim("api", "old").unwrap();
        let state = |id: &str, value: &str| serde_json::json!({ "id": id, "annotations": { ANNOTATION: value } }).to_string();
        // The container that stopped is not the one the files now belong to: nothing goes.
        assert_eq!(stopped(home.path(), state("older", "web/pr-1/api").as_bytes()).unwrap(), None);
        assert!(secrets.sandbox_dir("api").join("TOKEN").exists());
        let removed = stopped(home.path(), state("old", "web/pr-1/api").as_bytes()).unwrap();
        assert_eq!(removed, Some(secrets.sandbox_dir("api")));
        assert!(!secrets.sandbox_dir("api").exists());
        assert!(secrets.sandbox_dir("db").join("TOKEN").exists(), "another sandbox's files stay");
        for bad in ["web/pr-1", "web/../x/api", "web/pr-1/../../etc"] {
            assert!(stopped(home.path(), state("old", bad).as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(stopped(home.path(), br#"{"id":"x","annotations":{}}"#.as_slice()).unwrap(), None);
        let huge = vec![b' '; MAX_STATE_BYTES as usize + 2];
        assert!(stopped(home.path(), huge.as_slice()).is_err());
    }
}

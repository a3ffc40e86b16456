//! `galley exec` and `galley logs`: a command in a running sandbox, or the sandbox's output,
//! through podman with galley's terminal attached.
//!
//! A command gains nothing the sandbox was denied: it runs as the sandbox's declared user, and
//! `podman exec` without `--privileged` gives it the container's own capability sets,
//! no_new_privs and seccomp filter (`tests/exec.rs` reads all three from inside).

use super::naming::Instance;
use super::podman::Podman;
use super::{Result, RuntimeError};
use crate::manifest::SandboxManifest;

/// What `galley logs` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new output until the sandbox stops.
    pub follow: bool,
    /// Only output since this time or duration (as podman reads it: `10m`, an RFC 3339 time).
    pub since: Option<String>,
    /// Only the last N lines.
    pub tail: Option<u64>,
}

/// The manifest and container name of `sandbox`, which must be declared and running.
pub fn running<'m>(
    podman: &Podman<'_>,
    instance: &Instance,
    desired: &'m [SandboxManifest],
    sandbox: &str,
) -> Result<(&'m SandboxManifest, String)> {
    let Some(manifest) = desired.iter().find(|m| m.sandbox == sandbox) else {
        return Err(RuntimeError::Undeclared {
            sandbox: sandbox.to_owned(),
            instance: instance.instance.clone(),
            declared: desired.iter().map(|m| m.sandbox.clone()).collect(),
        });
    };
    let name = instance.container(sandbox);
    let state = match podman.containers(instance)?.into_iter().find(|c| c.name == name) {
        Some(c) if c.running() => return Ok((manifest, name)),
        Some(c) => format!("{}, exit code {}", c.state, c.exit_code),
        None => "absent".into(),
    };
    Err(RuntimeError::NotRunning { sandbox: sandbox.to_owned(), instance: instance.instance.clone(), state })
}

/// The `podman exec` arguments: stdin passed through, a terminal only when asked for, the
/// declared user, no `--privileged`, and no detach keys (every byte typed reaches the command).
pub fn exec_args(container: &str, user: &str, command: &[String], tty: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["exec".into(), "--interactive".into()];
    if tty {
        a.push("--tty".into());
    }
    a.extend(["--user".into(), user.to_owned(), "--detach-keys=".into(), container.to_owned()]);
    a.extend(command.iter().cloned());
    a
}

/// The `podman logs` arguments.
pub fn logs_args(container: &str, options: &LogOptions) -> Vec<String> {
    let mut a: Vec<String> = vec!["logs".into()];
    if options.follow {
        a.push("--follow".into());
    }
    if let Some(since) = &options.since {
        a.push(format!("--since={since}"));
    }
    if let Some(n) = options.tail {
        a.push(format!("--tail={n}"));
    }
    a.push(container.to_owned());
    a
}

/// Run `command` in the running `sandbox` with galley's terminal; returns its exit code.
pub fn exec(podman: &Podman<'_>, instance: &Instance, desired: &[SandboxManifest], sandbox: &str, command: &[String], tty: bool) -> Result<i32> {
    let (manifest, name) = running(podman, instance, desired, sandbox)?;
    Ok(podman.runner.attach(&podman.cmd().args(exec_args(&name, &manifest.user.podman_arg(), command, tty)))?)
}

/// Stream the output of the running `sandbox` to galley's stdout and stderr; returns podman's
/// exit code.
pub fn logs(podman: &Podman<'_>, instance: &Instance, desired: &[SandboxManifest], sandbox: &str, options: &LogOptions) -> Result<i32> {
    let (_, name) = running(podman, instance, desired, sandbox)?;
    Ok(podman.runner.attach(&podman.cmd().args(logs_args(&name, options)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};

    fn ps(state: &str) -> Output {
        let json = format!(r#"[{{"Id":"abc","Names":["galley_web_default_api"],"State":"{state}","ExitCode":3,"Labels":{{}}}}]"#);
        Output { code: Some(0), stdout: json.into_bytes(), ..Output::default() }
    }

    #[test]
    fn exec_runs_as_the_declared_user_without_privileges_and_returns_the_code() {
        let recorder = Recorder::default();
        recorder.answer("podman ps", ps("running"));
        recorder.answer("podman exec", Output { code: Some(3), ..Output::default() });
        let podman = Podman { runner: &recorder, runtime: None };
        let instance = Instance::new("web", "default").unwrap();
        let desired = [crate::runtime::podman::tests::manifest()];
        let command = ["/bin/sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(exec(&podman, &instance, &desired, "api", &command, false).unwrap(), 3);
        assert_eq!(exec(&podman, &instance, &desired, "api", &command[..1], true).unwrap(), 3);
        let calls = recorder.commands();
        assert_eq!(calls[1], "podman exec --interactive --user 1000:1000 --detach-keys= galley_web_default_api /bin/sh -c exit 3");
        assert_eq!(calls[3], "podman exec --interactive --tty --user 1000:1000 --detach-keys= galley_web_default_api /bin/sh");
        assert!(calls.iter().all(|c| !c.contains("--privileged")), "{calls:?}");
    }

    #[test]
    fn logs_pass_follow_since_and_tail() {
        let options = LogOptions { follow: true, since: Some("10m".into()), tail: Some(1) };
        assert_eq!(logs_args("c", &options).join(" "), "logs --follow --since=10m --tail=1 c");
        assert_eq!(logs_args("c", &LogOptions::default()).join(" "), "logs c");
    }

    #[test]
    fn undeclared_absent_and_exited_sandboxes_are_refused_before_any_exec() {
        let instance = Instance::new("web", "pr-1").unwrap();
        let desired = [crate::runtime::podman::tests::manifest()];
        let recorder = Recorder::default();
        let podman = Podman { runner: &recorder, runtime: None };
        let err = exec(&podman, &instance, &desired, "db", &["true".into()], false).unwrap_err();
        assert_eq!(err.to_string(), "sandbox `db` is not declared in galley.ncl (instance `pr-1`)");
        assert!(err.help().unwrap().contains("declared sandboxes: api"), "{:?}", err.help());
        assert!(recorder.commands().is_empty());

        let err = logs(&podman, &instance, &desired, "api", &LogOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "sandbox `api` of instance `pr-1` is not running (absent)");
        assert_eq!(err.help().as_deref(), Some("run `galley apply --instance pr-1`"));

        let instance = Instance::new("web", "default").unwrap();
        recorder.answer("podman ps", ps("exited"));
        let err = exec(&podman, &instance, &desired, "api", &["true".into()], false).unwrap_err();
        assert_eq!(err.to_string(), "sandbox `api` of instance `default` is not running (exited, exit code 3)");
        assert_eq!(err.help().as_deref(), Some("run `galley apply`"));
        assert!(recorder.commands().iter().all(|c| c.starts_with("podman ps")), "{:?}", recorder.commands());
    }
}

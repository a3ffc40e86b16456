//! The only place galley starts processes (podman, buildah, host secret commands).
//!
//! Commands are argument vectors, never shell strings. Everything goes through [`Runner`], with a
//! real implementation ([`System`]) and a recording one ([`Recorder`]) for unit tests that check
//! which calls a feature makes without running them. A process either runs captured
//! ([`Runner::run`]: its output comes back as bytes) or attached ([`Runner::attach`]: it shares
//! galley's terminal, for `galley exec` and `galley logs`).
//!
//! Environment policy: no child inherits a secret-bearing variable. The master keys
//! ([`crate::env_vars::WITHHELD`]) and every variable a loaded project names as a secret's `env`
//! source ([`withhold_env`]) are removed from what a child inherits, so podman, conmon, buildah,
//! secret `command` helpers and galley's own evaluator child never see them. A caller that needs
//! one in a child passes it explicitly with [`Cmd::env`]; no caller does today.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Variables withheld from every child besides [`crate::env_vars::WITHHELD`]: the `env` sources
/// of the loaded project's secrets.
static WITHHELD_EXTRA: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Withhold `names` from every child process started from now on (they stay in galley's own
/// environment, where the secret resolver reads them).
pub fn withhold_env<I, S>(names: I)
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    WITHHELD_EXTRA
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(names.into_iter().map(Into::into));
}

/// Every variable no child inherits: the fixed secret-bearing ones and those [`withhold_env`] added.
pub fn withheld_env() -> BTreeSet<OsString> {
    let mut all = WITHHELD_EXTRA
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    all.extend(crate::env_vars::WITHHELD.iter().map(OsString::from));
    all
}

/// A process to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Extra environment variables. The rest is inherited, less [`withheld_env`]; a withheld
    /// variable reaches the child only when it is named here.
    pub env: Vec<(OsString, OsString)>,
    /// Environment variables to remove.
    pub env_remove: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// Bytes written to standard input, then closed. Standard input is empty otherwise.
    pub stdin: Option<Vec<u8>>,
    /// Kill the process after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of standard output; the rest is read and dropped, and
    /// [`Output::stdout_overflowed`] says so.
    pub stdout_limit: Option<usize>,
    /// Keep only the last [`STDERR_KEPT`] bytes of standard output, as of standard error: for a
    /// command whose output is only shown, by its last lines, when it fails.
    pub stdout_tail: bool,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd { program: program.into(), ..Cmd::default() }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn env_remove(mut self, k: impl Into<OsString>) -> Cmd {
        self.env_remove.push(k.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Cmd {
        self.stdin = Some(bytes);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = Some(t);
        self
    }

    pub fn stdout_limit(mut self, bytes: usize) -> Cmd {
        self.stdout_limit = Some(bytes);
        self
    }

    pub fn stdout_tail(mut self) -> Cmd {
        self.stdout_tail = true;
        self
    }

    /// `program arg arg`, for messages. Arguments are shown as given; callers never put secret
    /// values in argv, so this is safe to print.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    /// The signal that ended the process, when one did (the timeout's kill included).
    pub signal: Option<i32>,
    /// Standard output went past [`Cmd::stdout_limit`] and was cut there.
    pub stdout_overflowed: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("`{program}` was not found on PATH")]
    NotFound { program: String },
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{command}` was stopped after its time limit of {}", seconds(*.limit))]
    TimedOut { command: String, limit: Duration },
    #[error("`{command}` wrote more than its limit of {limit} bytes to standard output")]
    TooMuchOutput { command: String, limit: usize },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
}

/// Runs commands. Implementations must be usable from several threads.
pub trait Runner: Send + Sync {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;

    /// Run with galley's own standard input, output and error, and return the exit code (128 + N
    /// when killed by signal N). `stdin` and `timeout` of `cmd` do not apply.
    fn attach(&self, cmd: &Cmd) -> Result<i32, ExecError>;

    /// Run and require exit status 0.
    fn check(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        require_success(cmd, self.run(cmd)?)
    }
}

/// A runner whose children inherit only the variables container tools read ([`kept_by_scrub`]):
/// for calls made before galley knows which variables hold the project's secrets.
pub struct Scrubbed<'a>(pub &'a dyn Runner);

/// Whether [`Scrubbed`] passes `name` on: the search path, the user's home and runtime
/// directories, locale and time zone, and the variables of podman, its libraries and iptables.
pub fn kept_by_scrub(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    const EXACT: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "DBUS_SESSION_BUS_ADDRESS", "REGISTRY_AUTH_FILE"];
    const PREFIXES: &[&str] = &["LC_", "XDG_", "CONTAINERS_", "_CONTAINERS_", "STORAGE_", "XTABLES_"];
    EXACT.contains(&name.as_ref()) || PREFIXES.iter().any(|p| name.starts_with(p))
}

impl Scrubbed<'_> {
    fn scrub(cmd: &Cmd) -> Cmd {
        let mut cmd = cmd.clone();
        cmd.env_remove.extend(std::env::vars_os().map(|(k, _)| k).filter(|k| !kept_by_scrub(k)));
        cmd
    }
}

impl Runner for Scrubbed<'_> {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.0.run(&Scrubbed::scrub(cmd))
    }

    fn attach(&self, cmd: &Cmd) -> Result<i32, ExecError> {
        self.0.attach(&Scrubbed::scrub(cmd))
    }
}

/// `out` of `cmd` when it exited 0, else the error [`Runner::check`] returns: for a caller that
/// looks at a failure's output before deciding it is one.
pub fn require_success(cmd: &Cmd, out: Output) -> Result<Output, ExecError> {
    if out.success() && out.stdout_overflowed {
        // What was kept is cut short: no caller that asks for success can use it.
        Err(ExecError::TooMuchOutput { command: cmd.display(), limit: cmd.stdout_limit.unwrap_or_default() })
    } else if out.success() {
        Ok(out)
    } else if let (true, Some(limit)) = (out.timed_out, cmd.timeout) {
        Err(ExecError::TimedOut { command: cmd.display(), limit })
    } else {
        Err(ExecError::Failed {
            command: cmd.display(),
            status: match (out.code, out.timed_out) {
                (_, true) => "timed out".into(),
                (Some(c), _) => format!("exit {c}"),
                (None, _) => "killed by a signal".into(),
            },
            stderr: tail(&out.stderr_str(), 20),
        })
    }
}

/// A time limit for messages: `90s`, `0.5s`.
pub fn seconds(limit: Duration) -> String {
    format!("{}s", limit.as_secs_f64())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct System;

impl System {
    /// `cmd` as a [`Command`] with its arguments, environment and directory, not yet started.
    fn command(cmd: &Cmd) -> Command {
        let mut command = Command::new(&cmd.program);
        command.args(&cmd.args);
        for k in withheld_env() {
            command.env_remove(k);
        }
        for k in &cmd.env_remove {
            command.env_remove(k);
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        command
    }

    fn spawn(command: &mut Command, program: &str) -> Result<std::process::Child, ExecError> {
        command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ExecError::NotFound { program: program.to_owned() },
            _ => ExecError::Spawn { program: program.to_owned(), source },
        })
    }
}

impl Runner for System {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let program = cmd.program.to_string_lossy().into_owned();
        let mut command = System::command(cmd);
        command
            .stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = System::spawn(&mut command, &program)?;
        if let Some(bytes) = &cmd.stdin {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let limit = cmd.stdout_limit.map_or(u64::MAX, |l| l as u64);
        let tail_only = cmd.stdout_tail;
        let out_reader =
            std::thread::spawn(move || if tail_only { (read_tail(stdout, STDERR_KEPT), false) } else { read_at_most(stdout, limit) });
        let err_reader = std::thread::spawn(move || read_tail(stderr, STDERR_KEPT));
        let (status, timed_out) = match cmd.timeout {
            None => (child.wait(), false),
            Some(limit) => wait_with_timeout(&mut child, limit),
        };
        let status = status.map_err(|source| ExecError::Spawn { program: program.clone(), source })?;
        let (stdout, stdout_overflowed) = out_reader.join().unwrap_or_default();
        Ok(Output {
            code: if timed_out { None } else { status.code() },
            stdout,
            stderr: err_reader.join().unwrap_or_default(),
            timed_out,
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            stdout_overflowed,
        })
    }

    fn attach(&self, cmd: &Cmd) -> Result<i32, ExecError> {
        use std::os::unix::process::ExitStatusExt;
        let program = cmd.program.to_string_lossy().into_owned();
        let mut command = System::command(cmd);
        command.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        let status = System::spawn(&mut command, &program)?
            .wait()
            .map_err(|source| ExecError::Spawn { program: program.clone(), source })?;
        Ok(status.code().or_else(|| status.signal().map(|n| 128 + n)).unwrap_or(128))
    }
}

/// The time limit of a podman call: a hung podman (a stuck storage lock, a runtime that never
/// answers) fails the command instead of blocking it forever.
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(300);
/// The time limit of a podman call that copies a volume or a tree in.
pub const PODMAN_COPY_TIMEOUT: Duration = Duration::from_secs(3600);
/// The most standard output galley keeps of a podman call (a listing or an inspect of
/// thousands of containers is a few MiB).
pub const PODMAN_STDOUT_LIMIT: usize = 64 << 20;

/// A podman call with [`PODMAN_TIMEOUT`] and [`PODMAN_STDOUT_LIMIT`] (a call that copies data
/// in sets [`PODMAN_COPY_TIMEOUT`] instead).
pub fn podman() -> Cmd {
    Cmd::new("podman").timeout(PODMAN_TIMEOUT).stdout_limit(PODMAN_STDOUT_LIMIT)
}

/// How much of a command's standard error galley keeps: the last MiB (messages quote its last
/// lines). The rest is read and dropped, so a chatty or hostile tool cannot fill memory.
pub const STDERR_KEPT: usize = 1 << 20;

/// The last `keep` bytes of `r`, read to its end.
fn read_tail(mut r: impl std::io::Read, keep: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if buf.len() > 2 * keep {
            buf.drain(..buf.len() - keep);
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
    }
    buf
}

/// The first `limit` bytes of `r`, and whether there were more (read to the end and dropped, so
/// the writer never blocks).
fn read_at_most(mut r: impl std::io::Read, limit: u64) -> (Vec<u8>, bool) {
    use std::io::Read;
    let mut buf = Vec::new();
    let _ = r.by_ref().take(limit).read_to_end(&mut buf);
    let rest = std::io::copy(&mut r, &mut std::io::sink()).unwrap_or(0);
    (buf, rest > 0)
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> (std::io::Result<std::process::ExitStatus>, bool) {
    let deadline = std::time::Instant::now() + limit;
    // Woken by the kernel the moment the child exits, through a pidfd; on a kernel without
    // pidfds (before 5.3), short naps first, since most commands end within milliseconds.
    let exited = ExitNotice::new(child.id());
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), false),
            Ok(None) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    // Everything it started goes too (a `buildah run`'s container process sits
                    // in its own session, so only its parent links lead to it).
                    for pid in descendants(child.id()) {
                        // SAFETY: kill(2) with a pid read from /proc.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    }
                    let _ = child.kill();
                    return (child.wait(), true);
                }
                match &exited {
                    Some(notice) => notice.wait(left),
                    None => {
                        std::thread::sleep(nap.min(left));
                        nap = (nap * 2).min(Duration::from_millis(10));
                    }
                }
            }
            Err(e) => return (Err(e), false),
        }
    }
}

/// A pidfd of a child not yet reaped (so its pid cannot be reused): readable once it exits.
struct ExitNotice(std::os::fd::OwnedFd);

impl ExitNotice {
    fn new(pid: u32) -> Option<ExitNotice> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor (close-on-exec)
        // or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        (fd >= 0).then(|| ExitNotice(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Until the process exits or `limit` passes (or a signal interrupts: the caller checks).
    fn wait(&self, limit: Duration) {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // Rounded up, so a wait never ends just before the deadline and spins.
        let ms = limit.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for the length given.
        unsafe { libc::poll(&mut fd, 1, ms) };
    }
}

/// The processes below `root` (children, their children, ...), from /proc's parent links.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may hold spaces: the parent follows the last ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// Records every command and answers from a script, for unit tests.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<Cmd>>,
    /// Answers by program+first argument prefix match on `display()`; default: success, empty.
    pub answers: Mutex<Vec<(String, Output)>>,
}

impl Recorder {
    pub fn answer(&self, prefix: &str, out: Output) {
        self.answers.lock().expect("recorder lock").push((prefix.to_owned(), out));
    }

    pub fn commands(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").iter().map(Cmd::display).collect()
    }
}

impl Runner for Recorder {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.calls.lock().expect("recorder lock").push(cmd.clone());
        let shown = cmd.display();
        let answers = self.answers.lock().expect("recorder lock");
        Ok(answers
            .iter()
            .find(|(p, _)| shown.starts_with(p.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or(Output { code: Some(0), ..Output::default() }))
    }

    /// Records like [`Recorder::run`] and answers with the scripted exit code.
    fn attach(&self, cmd: &Cmd) -> Result<i32, ExecError> {
        Ok(self.run(cmd)?.code.unwrap_or(128))
    }
}

/// Start `cmd` detached, in a process group of its own, to outlive galley (the port forwarder):
/// standard input is closed, standard error appended to `log`, and the first line the process
/// writes on standard output, within `ready_within`, is returned with its pid. The process must
/// write nothing more on standard output.
pub fn start_detached(cmd: &Cmd, log: &std::path::Path, ready_within: Duration) -> Result<(u32, String), ExecError> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let program = cmd.program.to_string_lossy().into_owned();
    let spawn_err = |source| ExecError::Spawn { program: program.clone(), source };
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(spawn_err)?;
    let mut command = System::command(cmd);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log).process_group(0);
    let mut child = System::spawn(&mut command, &program)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(std::io::Read::take(stdout, 4096)).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(ready_within) {
        Ok(line) if !line.is_empty() => Ok((child.id(), line.trim_end().to_owned())),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let status = if other.is_ok() { "exited before it was ready" } else { "was not ready in time" };
            Err(ExecError::Failed { command: cmd.display(), status: status.into(), stderr: String::new() })
        }
    }
}

/// Whether `program` can be found on PATH.
pub fn available(program: &str) -> bool {
    find(program).is_some()
}

/// Where `program` is on PATH, the first match.
pub fn find(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary's environment holds cargo's variables, which no container tool reads:
    /// a scrubbed child sees none of them, and still has PATH and HOME.
    #[test]
    fn a_scrubbed_child_inherits_only_what_container_tools_read() {
        let out = Scrubbed(&System).check(&Cmd::new("env")).unwrap();
        let names: Vec<String> = out.stdout_str().lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k.to_owned()).collect();
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "the test runs under cargo");
        assert!(!names.iter().any(|n| n.starts_with("CARGO_")), "{names:?}");
        assert!(names.iter().all(|n| kept_by_scrub(std::ffi::OsStr::new(n))), "{names:?}");
        assert!(names.contains(&"PATH".to_owned()), "{names:?}");
        // A variable the command sets itself still reaches it.
        let out = Scrubbed(&System).check(&Cmd::new("env").env("GIVEN", "1")).unwrap();
        assert!(out.stdout_str().lines().any(|l| l == "GIVEN=1"));
    }

    #[test]
    fn system_runs_argv_without_a_shell() {
        let out = System.check(&Cmd::new("printf").arg("%s|").arg("a b; echo no")).unwrap();
        assert_eq!(out.stdout_str(), "a b; echo no|");
    }

    #[test]
    fn failures_carry_the_tail_of_stderr() {
        let err = System.check(&Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        assert!(err.to_string().contains("exit 3"), "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn timeouts_kill_the_process() {
        let out = System.run(&Cmd::new("sleep").arg("5").timeout(Duration::from_millis(100))).unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
    }

    #[test]
    fn a_process_ending_within_its_limit_reports_its_own_exit() {
        let out = System.run(&Cmd::new("sh").args(["-c", "sleep 0.05; exit 4"]).timeout(Duration::from_secs(60))).unwrap();
        assert_eq!((out.code, out.timed_out), (Some(4), false));
        assert!(ExitNotice::new(std::process::id()).is_some(), "this kernel has pidfds: the wait is not the nap fallback");
    }

    #[test]
    fn output_past_the_limit_is_cut_and_flagged() {
        let out = System.run(&Cmd::new("head").args(["-c", "100000", "/dev/zero"]).stdout_limit(10)).unwrap();
        assert_eq!((out.stdout.len(), out.stdout_overflowed), (10, true));
        let out = System.run(&Cmd::new("printf").arg("abc").stdout_limit(3)).unwrap();
        assert_eq!((out.stdout.as_slice(), out.stdout_overflowed), (&b"abc"[..], false));
    }

    /// Guards galley's memory against a tool that floods standard error: only the last
    /// [`STDERR_KEPT`] bytes stay, and a successful command whose output was cut is an error,
    /// never a short answer.
    #[test]
    fn a_flood_on_stderr_keeps_its_tail_and_cut_output_fails_a_check() {
        let flood = "head -c 50000000 /dev/zero >&2; echo last-line >&2";
        let out = System.run(&Cmd::new("sh").args(["-c", flood])).unwrap();
        assert_eq!(out.stderr.len(), STDERR_KEPT);
        assert!(out.stderr.ends_with(b"last-line\n"));
        let out = System.run(&Cmd::new("sh").args(["-c", &flood.replace(">&2", "")]).stdout_tail()).unwrap();
        assert_eq!(out.stdout.len(), STDERR_KEPT);
        assert!(out.stdout.ends_with(b"last-line\n"));
        let err = System.check(&Cmd::new("head").args(["-c", "100", "/dev/zero"]).stdout_limit(10)).unwrap_err();
        assert!(matches!(err, ExecError::TooMuchOutput { limit: 10, .. }), "{err}");
    }

    #[test]
    fn the_signal_that_ended_a_process_is_reported() {
        let out = System.run(&Cmd::new("sh").args(["-c", "kill -SEGV $$"])).unwrap();
        assert_eq!((out.code, out.signal), (None, Some(libc::SIGSEGV)));
    }

    #[test]
    fn stdin_is_delivered() {
        let out = System.check(&Cmd::new("cat").stdin(b"hi".to_vec())).unwrap();
        assert_eq!(out.stdout, b"hi");
    }

    #[test]
    fn recorder_records_and_answers() {
        let r = Recorder::default();
        r.answer("podman inspect", Output { code: Some(1), ..Output::default() });
        assert!(!r.run(&Cmd::new("podman").arg("inspect")).unwrap().success());
        assert!(r.run(&Cmd::new("podman").arg("ps")).unwrap().success());
        assert_eq!(r.commands(), vec!["podman inspect", "podman ps"]);
    }

    #[test]
    fn attached_processes_return_their_exit_code_and_signal() {
        assert_eq!(System.attach(&Cmd::new("sh").args(["-c", "exit 3"])).unwrap(), 3);
        assert_eq!(System.attach(&Cmd::new("true")).unwrap(), 0);
        assert_eq!(System.attach(&Cmd::new("sh").args(["-c", "kill -KILL $$"])).unwrap(), 128 + 9);
        assert!(matches!(System.attach(&Cmd::new("galley-no-such-program")), Err(ExecError::NotFound { .. })));
    }

    #[test]
    fn recorder_records_attached_calls_and_answers_their_code() {
        let r = Recorder::default();
        r.answer("podman exec", Output { code: Some(127), ..Output::default() });
        assert_eq!(r.attach(&Cmd::new("podman").args(["exec", "c", "nope"])).unwrap(), 127);
        assert_eq!(r.attach(&Cmd::new("podman").arg("logs")).unwrap(), 0);
        assert_eq!(r.commands(), vec!["podman exec c nope", "podman logs"]);
    }
}

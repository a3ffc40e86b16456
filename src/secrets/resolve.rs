//! Resolving a secret's source (`model::Secret`) to its value on the host: the one [`Resolver`]
//! behind apply's secret files and verify's secret-exposure check.
//!
//! Errors name the secret and its source, never the value: a failing command's standard output
//! is never shown, and of its standard error only the first line, filtered ([`filter_stderr`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{Cmd, ExecError, Runner};
use crate::model::{Project, Secret};

use super::crypto::CryptoError;
use super::store::{Store, StoreError};
use super::value::SecretValue;

/// How long a secret command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest secret file galley reads.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{name}` ({source_}): the environment variable is not set")]
    EnvMissing { name: String, source_: Source },
    #[error("secret `{name}` ({source_}): the value is empty")]
    Empty { name: String, source_: Source },
    #[error("secret `{name}` ({source_}): $HOME is not set, so `~` cannot be expanded")]
    NoHome { name: String, source_: Source },
    #[error("secret `{name}` ({source_}): cannot read {path}: {error}")]
    File { name: String, source_: Source, path: PathBuf, error: std::io::Error },
    #[error("secret `{name}` ({source_}): {path} is larger than {MAX_FILE_BYTES} bytes")]
    FileTooLarge { name: String, source_: Source, path: PathBuf },
    #[error("secret `{name}` ({source_}): the command is empty")]
    EmptyCommand { name: String, source_: Source },
    #[error("secret `{name}` ({source_}): {error}")]
    Start { name: String, source_: Source, error: ExecError },
    #[error("secret `{name}` ({source_}): the command failed ({status}){}", stderr_suffix(.stderr))]
    CommandFailed { name: String, source_: Source, status: String, stderr: String },
    #[error("secret `{name}` ({source_}): the secret store is not open")]
    NoStore { name: String, source_: Source },
    #[error("secret `{name}` ({source_}): {error}")]
    Store { name: String, source_: Source, error: StoreError },
    /// The project names a store key but `GALLEY_MASTER_KEY` does not hold a master key.
    #[error(transparent)]
    MasterKey(#[from] CryptoError),
    /// The project's store could not be opened.
    #[error(transparent)]
    OpenStore(#[from] StoreError),
}

impl SecretError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            SecretError::EnvMissing { .. } => Some("export the variable before running galley"),
            SecretError::CommandFailed { .. } => Some(
                "only the first line of the command's standard error is shown, filtered; run the command yourself to see all of it",
            ),
            SecretError::NoStore { .. } => {
                Some("export GALLEY_MASTER_KEY so galley can open the secret store")
            }
            SecretError::Store { error, .. } | SecretError::OpenStore(error) => error.help(),
            SecretError::MasterKey(error) => error.help(),
            _ => None,
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
}

/// A secret's source as shown in messages: `env GH_TOKEN`, `file ~/token`, `command gh auth
/// token`, `store GH_TOKEN`. Sources hold no values (the schema rejects literals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source(String);

impl Source {
    pub fn of(secret: &Secret) -> Source {
        Source(match secret {
            Secret::Env(var) => format!("env {var}"),
            Secret::File(path) => format!("file {path}"),
            Secret::Command(argv) => format!("command {}", argv.join(" ")),
            Secret::Store(key) => format!("store {key}"),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where host environment variables come from: the process, or a fixed map in tests.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<OsString> + Sync);

fn process_env(key: &str) -> Option<OsString> {
    std::env::var_os(key)
}

/// The one way galley turns a secret's source into its value: every source kind (env, file,
/// command, store) of one project, resolved on the host into a [`SecretValue`] that callers
/// borrow from and never copy.
pub struct Resolver<'a> {
    project_dir: PathBuf,
    store: Option<Store>,
    runner: &'a dyn Runner,
    env: Env<'a>,
}

impl<'a> Resolver<'a> {
    /// Files are relative to `project_dir`; commands run there through `runner`. No store.
    pub fn new(project_dir: impl Into<PathBuf>, runner: &'a dyn Runner) -> Resolver<'a> {
        Resolver { project_dir: project_dir.into(), store: None, runner, env: &process_env }
    }

    /// Resolve `{ store = .. }` sources from `store`.
    pub fn with_store(self, store: Store) -> Resolver<'a> {
        Resolver { store: Some(store), ..self }
    }

    /// Read environment variables through `env` instead of the process environment.
    pub fn with_env(self, env: Env<'a>) -> Resolver<'a> {
        Resolver { env, ..self }
    }

    /// For starting sandboxes: the project's store is opened when any sandbox names a store key,
    /// which needs `GALLEY_MASTER_KEY`; projects without one need no master key.
    pub fn for_apply(
        home: &Path,
        project_dir: PathBuf,
        project: &Project,
        runner: &'a dyn Runner,
    ) -> Result<Resolver<'a>, SecretError> {
        let resolver = Resolver::new(project_dir, runner);
        let uses_store = project.sandboxes.values().flat_map(|s| s.secrets.values()).any(|s| matches!(s, Secret::Store(_)));
        if !uses_store {
            return Ok(resolver);
        }
        Ok(resolver.with_store(Store::open(home, &project.name, super::master_key()?)?))
    }

    /// The value of secret `name` from `source`. Commands run with [`COMMAND_TIMEOUT`]; empty
    /// values are errors.
    pub fn resolve(&self, name: &str, source: &Secret) -> Result<SecretValue, SecretError> {
        let (project_dir, env) = (self.project_dir.as_path(), self.env);
            let ctx = || (name.to_owned(), Source::of(source));
        let value = match source {
            Secret::Env(var) => match env(var) {
                Some(v) => SecretValue::new(std::os::unix::ffi::OsStringExt::into_vec(v)),
                None => {
                    let (name, source_) = ctx();
                    return Err(SecretError::EnvMissing { name, source_ });
                }
            },
            Secret::File(path) => {
                let path = file_path(project_dir, path, env).ok_or_else(|| {
                    let (name, source_) = ctx();
                    SecretError::NoHome { name, source_ }
                })?;
                read_file(&path).map_err(|e| {
                    let (name, source_) = ctx();
                    match e {
                        None => SecretError::FileTooLarge { name, source_, path },
                        Some(error) => SecretError::File { name, source_, path, error },
                    }
                })?
            }
            Secret::Command(argv) => run_command(project_dir, argv, self.runner).map_err(|e| {
                let (name, source_) = ctx();
                match e {
                    CommandError::Empty => SecretError::EmptyCommand { name, source_ },
                    CommandError::Start(error) => SecretError::Start { name, source_, error },
                    CommandError::Failed { status, stderr } => SecretError::CommandFailed { name, source_, status, stderr },
                }
            })?,
            Secret::Store(key) => {
                let Some(store) = &self.store else {
                    let (name, source_) = ctx();
                    return Err(SecretError::NoStore { name, source_ });
                };
                store.get(key).map_err(|error| {
                    let (name, source_) = ctx();
                    SecretError::Store { name, source_, error }
                })?
            }
        };
        if value.is_empty() {
            let (name, source_) = ctx();
            return Err(SecretError::Empty { name, source_ });
        }
        Ok(value)
    }
}

/// `~` and `~/...` expand to `$HOME`; relative paths are under `project_dir`.
fn file_path(project_dir: &Path, path: &str, env: Env<'_>) -> Option<PathBuf> {
    let home = || env(crate::env_vars::HOME).filter(|h| !h.is_empty()).map(PathBuf::from);
    Some(if path == "~" {
        home()?
    } else if let Some(rest) = path.strip_prefix("~/") {
        home()?.join(rest)
    } else {
        project_dir.join(path)
    })
}

/// The file's bytes; `Err(None)` when it is too large.
fn read_file(path: &Path) -> Result<SecretValue, Option<std::io::Error>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Some)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(Some)?;
    let value = SecretValue::new(bytes);
    if value.len() as u64 > MAX_FILE_BYTES { Err(None) } else { Ok(value) }
}

/// The longest stretch of a failing command's first stderr line an error shows.
pub const STDERR_SHOWN_CHARS: usize = 160;

/// What an error shows of a failing secret command's standard error, which may hold the value
/// (or another credential) a helper echoes while failing: only the first non-empty line, at most
/// [`STDERR_SHOWN_CHARS`] characters, with what the command printed on standard output and every
/// credential-like word (see [`looks_like_credential`]) replaced by `[redacted]`; the number of
/// further lines is said, never their text.
pub fn filter_stderr(stderr: &str, printed: &SecretValue) -> String {
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return String::new();
    };
    let line: String = first.chars().take(STDERR_SHOWN_CHARS).collect();
    let line = printed.redact_in(&line);
    let mut shown = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, shown: &mut String| {
        shown.push_str(if looks_like_credential(word) {
            "[redacted]"
        } else {
            word
        });
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || "+/=_-".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut shown);
            shown.push(c);
        }
    }
    flush(&mut word, &mut shown);
    if first.chars().count() > STDERR_SHOWN_CHARS {
        shown.push_str("...");
    }
    match lines.count() {
        0 => shown,
        1 => format!("{shown} (1 more line of standard error not shown)"),
        n => format!("{shown} ({n} more lines of standard error not shown)"),
    }
}

/// A run of token characters (letters, digits, `+/=_-`) that could be a key or token: 16 or more
/// of them with both a letter and a digit, or 32 or more of any kind. Words of prose, paths
/// without digits and short numbers stay readable.
pub fn looks_like_credential(word: &str) -> bool {
    let (letter, digit) = (
        word.bytes().any(|b| b.is_ascii_alphabetic()),
        word.bytes().any(|b| b.is_ascii_digit()),
    );
    word.len() >= 32 || (word.len() >= 16 && letter && digit)
}

enum CommandError {
    Empty,
    Start(ExecError),
    Failed { status: String, stderr: String },
}

fn run_command(project_dir: &Path, argv: &[String], runner: &dyn Runner) -> Result<SecretValue, CommandError> {
    let (program, args) = argv.split_first().ok_or(CommandError::Empty)?;
    let cmd = Cmd::new(program).args(args).cwd(project_dir).timeout(COMMAND_TIMEOUT);
    let mut out = runner.run(&cmd).map_err(CommandError::Start)?;
    let stdout = SecretValue::new(std::mem::take(&mut out.stdout));
    if !out.success() {
        let status = match (out.code, out.timed_out) {
            (_, true) => format!("timed out after {}s", COMMAND_TIMEOUT.as_secs()),
            (Some(c), _) => format!("exit {c}"),
            (None, _) => "killed by a signal".into(),
        };
        let stderr = filter_stderr(&out.stderr_str(), &stdout);
        return Err(CommandError::Failed { status, stderr });
    }
    let mut value = stdout;
    value.trim_trailing_newline();
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::exec::{Output, Recorder, System};
    use crate::secrets::SecretKey;

    const CANARY: &str = "canary-7d2a-resolved-value";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        move |k| map.get(k).cloned()
    }

    fn run(dir: &Path, source: Secret, env_pairs: &[(&str, &str)]) -> Result<SecretValue, SecretError> {
        let env = env(env_pairs);
        Resolver::new(dir, &System).with_env(&env).resolve("API_TOKEN", &source)
    }

    fn assert_clean_error(err: &SecretError, source: &str, also: &str) {
        let text = err.to_string();
        assert!(text.contains("secret `API_TOKEN`") && text.contains(source) && text.contains(also), "{text}");
        assert!(!text.contains(CANARY), "{text}");
        assert!(!format!("{err:?}").contains(CANARY), "{err:?}");
    }

    #[test]
    fn env_sources() {
        let dir = tempfile::tempdir().unwrap();
        let v = run(dir.path(), Secret::Env("TOK".into()), &[("TOK", CANARY)]).unwrap();
        assert_eq!(v.expose_secret(), CANARY.as_bytes());
        let err = run(dir.path(), Secret::Env("TOK".into()), &[("OTHER", CANARY)]).unwrap_err();
        assert_clean_error(&err, "env TOK", "not set");
        let err = run(dir.path(), Secret::Env("TOK".into()), &[("TOK", "")]).unwrap_err();
        assert_clean_error(&err, "env TOK", "empty");
    }

    #[test]
    fn file_sources_relative_absolute_and_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.txt"), format!("{CANARY}\n")).unwrap();
        let want = format!("{CANARY}\n");
        let rel = run(dir.path(), Secret::File("token.txt".into()), &[]).unwrap();
        assert_eq!(rel.expose_secret(), want.as_bytes(), "files are read byte for byte");
        let abs = dir.path().join("token.txt").display().to_string();
        assert_eq!(run(Path::new("/"), Secret::File(abs), &[]).unwrap().expose_secret(), want.as_bytes());
        let home = dir.path().display().to_string();
        let tilde = run(Path::new("/"), Secret::File("~/token.txt".into()), &[("HOME", &home)]).unwrap();
        assert_eq!(tilde.expose_secret(), want.as_bytes());

        let err = run(dir.path(), Secret::File("missing.txt".into()), &[]).unwrap_err();
        assert_clean_error(&err, "file missing.txt", "missing.txt: No such file");
        let err = run(dir.path(), Secret::File("~/token.txt".into()), &[]).unwrap_err();
        assert_clean_error(&err, "file ~/token.txt", "$HOME is not set");
        std::fs::write(dir.path().join("big"), vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = run(dir.path(), Secret::File("big".into()), &[]).unwrap_err();
        assert_clean_error(&err, "file big", "larger than");
    }

    #[test]
    fn command_sources_trim_one_newline_and_run_in_the_project_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v"), format!("{CANARY}\n")).unwrap();
        let argv = vec!["cat".to_owned(), "v".to_owned()];
        assert_eq!(run(dir.path(), Secret::Command(argv), &[]).unwrap().expose_secret(), CANARY.as_bytes());
    }

    #[test]
    fn failing_commands_show_stderr_and_never_stdout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v"), CANARY).unwrap();
        let script = |s: &str| Secret::Command(vec!["sh".into(), "-c".into(), s.into()]);
        let err = run(dir.path(), script("cat v; echo 'not logged in' >&2; exit 3"), &[]).unwrap_err();
        assert_clean_error(&err, "command sh -c cat v;", "the command failed (exit 3): not logged in");
        let err = run(dir.path(), script("cat v; cat v >&2; exit 1"), &[]).unwrap_err();
        assert_clean_error(&err, "command sh -c", "[redacted]");
        let err = run(dir.path(), script("true"), &[]).unwrap_err();
        assert_clean_error(&err, "command sh -c true", "empty");
        let err = run(dir.path(), Secret::Command(vec!["galley-no-such-tool".into()]), &[]).unwrap_err();
        assert_clean_error(&err, "command galley-no-such-tool", "not found");
        let err = run(dir.path(), Secret::Command(vec![]), &[]).unwrap_err();
        assert!(matches!(err, SecretError::EmptyCommand { .. }));
    }

    #[test]
    fn a_failing_helper_that_echoes_credentials_to_stderr_does_not_leak_them_into_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = |s: &str| Secret::Command(vec!["sh".into(), "-c".into(), s.into()]);
        // A value on stderr only (nothing on stdout to compare with), in the first line.
        // The token is assembled by the shell, so argv (shown as the source) never holds it whole.
        let err = run(
            dir.path(),
            script(
                "t=ghp_Zx81; echo \"error: token ${t}mQ2vLr7TtY0aPq3w was revoked\" >&2; exit 1",
            ),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("error: token [redacted] was revoked"),
            "{text}"
        );
        assert!(!text.contains("Zx81mQ2v"), "{text}");
        // A value on a later line is never shown: only the count of lines not shown.
        std::fs::write(dir.path().join("v"), CANARY).unwrap();
        let body = "echo 'request failed' >&2; echo \"Authorization: Bearer $(cat v)\" >&2; echo done >&2; exit 2";
        let err = run(dir.path(), script(body), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.ends_with("the command failed (exit 2): request failed (2 more lines of standard error not shown)"), "{text}");
        assert_clean_error(&err, "command sh -c", "exit 2");
        assert!(err.help().unwrap().contains("run the command yourself"));
        // A long first line is cut at the cap.
        let err = run(
            dir.path(),
            script("printf 'x%.0s ' $(seq 400) >&2; exit 1"),
            &[],
        )
        .unwrap_err();
        let shown = err.to_string().rsplit_once("): ").unwrap().1.to_owned();
        assert!(
            shown.chars().count() <= STDERR_SHOWN_CHARS + 3,
            "{} chars shown",
            shown.chars().count()
        );
    }

    #[test]
    fn credential_like_words_are_told_from_prose_and_paths() {
        for word in [
            "ghp_Zx81mQ2vLr7TtY0aPq3w",
            "AKIAIOSFODNN7EXAMPLE1",
            "c2VjcmV0LXZhbHVlLWxvbmctZW5vdWdoLXRvLWJl",
        ] {
            assert!(looks_like_credential(word), "{word}");
        }
        for word in [
            "authentication",
            "not",
            "/home/user/",
            "12345",
            "gh-auth-token",
        ] {
            assert!(!looks_like_credential(word), "{word}");
        }
    }

    #[test]
    fn commands_have_a_timeout() {
        let recorder = Recorder::default();
        recorder.answer("gh", Output { code: None, stdout: CANARY.into(), timed_out: true, ..Output::default() });
        let source = Secret::Command(vec!["gh".into(), "auth".into(), "token".into()]);
        let err = Resolver::new("/p", &recorder).resolve("API_TOKEN", &source).unwrap_err();
        assert_clean_error(&err, "command gh auth token", "timed out after 30s");
        let calls = recorder.calls.lock().unwrap();
        assert_eq!(calls[0].timeout, Some(COMMAND_TIMEOUT));
        assert_eq!(calls[0].cwd.as_deref(), Some(Path::new("/p")));
    }

    #[test]
    fn every_host_source_resolves_and_failures_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file").unwrap();
        let s = Resolver::new(dir.path(), &System);
        assert_eq!(s.resolve("A", &Secret::File("token".into())).unwrap().expose_secret(), b"from-file");
        let cmd = Secret::Command(vec!["printf".into(), "from-command\n".into()]);
        assert_eq!(s.resolve("A", &cmd).unwrap().expose_secret(), b"from-command");
        // The printed text is not in argv, so an error that contained it would be a leak.
        let failing = Secret::Command(vec!["sh".into(), "-c".into(), "printf lea''ked; exit 3".into()]);
        let err = s.resolve("A", &failing).unwrap_err().to_string();
        assert!(!err.contains("leaked"), "{err}");
        assert!(s.resolve("A", &Secret::Store("K".into())).is_err(), "no store, no value");
    }

    #[test]
    fn projects_without_a_store_source_need_no_master_key() {
        let home = tempfile::tempdir().unwrap();
        let project: Project = serde_json::from_value(serde_json::json!({
            "name": "demo", "images": {}, "sandboxes": {}
        }))
        .unwrap();
        let r = Resolver::for_apply(home.path(), home.path().into(), &project, &System).unwrap();
        assert!(r.store.is_none());
        assert!(!home.path().join("secrets").exists(), "no store is created");
    }

    #[test]
    fn store_sources() {
        let home = tempfile::tempdir().unwrap();
        let mut store = Store::open(home.path(), "demo", SecretKey::random()).unwrap();
        store.set("MODEL_KEY", &SecretValue::new(CANARY.into())).unwrap();
        let source = Secret::Store("MODEL_KEY".into());
        let resolver = Resolver::new("/", &System).with_store(store);
        let got = resolver.resolve("API_TOKEN", &source).unwrap();
        assert_eq!(got.expose_secret(), CANARY.as_bytes());
        let missing = Secret::Store("OTHER".into());
        let err = resolver.resolve("API_TOKEN", &missing).unwrap_err();
        assert_clean_error(&err, "store OTHER", "no secret named `OTHER`");
        let err = Resolver::new("/", &System).resolve("API_TOKEN", &source).unwrap_err();
        assert_clean_error(&err, "store MODEL_KEY", "not open");
        assert!(err.help().unwrap().contains("GALLEY_MASTER_KEY"));
    }
}

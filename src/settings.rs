//! Settings every command shares, resolved once from flags and environment: the presentation
//! (format, verbosity, color) the CLI keeps, and the [`Env`] of paths and resolved values that
//! is all library code below the CLI is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env_vars;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// How much goes to stderr: `-q` errors only, `-v` more, `-vvv` phase timings too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    /// `-v` repeated this many times (1 to 3).
    Verbose(u8),
}

impl Verbosity {
    pub fn from_flags(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, n) => Verbosity::Verbose(n.min(3)),
        }
    }

    /// `-q`: errors only.
    pub fn quiet(self) -> bool {
        self == Verbosity::Quiet
    }

    /// `-v` or more.
    pub fn verbose(self) -> bool {
        matches!(self, Verbosity::Verbose(_))
    }

    /// `-vvv`: the timing of each build phase.
    pub fn timings(self) -> bool {
        self == Verbosity::Verbose(3)
    }
}

/// The OCI runtime podman and buildah are told to use, detected once by
/// `runtime::host::oci_runtime`: `GALLEY_OCI_RUNTIME` when set, else runc, else their default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRuntime {
    /// Pass `--runtime NAME`.
    Named(String),
    /// Leave podman's and buildah's own default (crun).
    ToolDefault,
    /// None is usable: what to say, and the fix, when one is needed.
    Unusable { message: String, help: String },
}

impl OciRuntime {
    /// The `--runtime` value, or why there is none to use.
    pub fn usable(&self) -> Result<Option<&str>, (&str, &str)> {
        match self {
            OciRuntime::Named(r) => Ok(Some(r)),
            OciRuntime::ToolDefault => Ok(None),
            OciRuntime::Unusable { message, help } => Err((message, help)),
        }
    }
}

/// What library code below the CLI gets: the paths, and the values resolved from the
/// environment. Never presentation (format, color, verbosity).
#[derive(Debug, Clone)]
pub struct Env {
    /// The project directory (`-C`), holding galley.ncl.
    pub project_dir: PathBuf,
    /// All of galley's state.
    pub home: PathBuf,
    /// The mtime clamp of image layers: `SOURCE_DATE_EPOCH`, else 0.
    pub source_date_epoch: u64,
    pub oci_runtime: OciRuntime,
    /// The time limit of one RUN step: `GALLEY_RUN_TIMEOUT_SECS`, else [`RUN_TIMEOUT`].
    pub run_timeout: Duration,
    /// The bounds of evaluating galley.ncl.
    pub eval: EvalLimits,
}

/// What evaluating galley.ncl may use: it runs in a child process (`exe`) killed at `timeout`,
/// whose memory is capped at `memory_bytes` and whose evaluating thread has a `stack_bytes` stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalLimits {
    /// The galley executable that runs the hidden evaluator subcommand.
    pub exe: PathBuf,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub stack_bytes: u64,
}

impl EvalLimits {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_MEMORY_MB: u64 = 2048;
    pub const DEFAULT_STACK_MB: u64 = 256;
    const MIB: u64 = 1024 * 1024;

    /// The limits the environment sets (`GALLEY_EVAL_*`), each else its default; this
    /// executable runs the evaluator.
    pub fn resolve(get: impl Fn(&str) -> Option<String>) -> Self {
        let number = |k: &str| get(k).and_then(|v| v.trim().parse::<u64>().ok()).filter(|n| *n > 0);
        EvalLimits {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("galley")),
            timeout: number(env_vars::GALLEY_EVAL_TIMEOUT_MS).map_or(Self::DEFAULT_TIMEOUT, Duration::from_millis),
            memory_bytes: number(env_vars::GALLEY_EVAL_MEMORY_MB).unwrap_or(Self::DEFAULT_MEMORY_MB) * Self::MIB,
            stack_bytes: number(env_vars::GALLEY_EVAL_STACK_MB).unwrap_or(Self::DEFAULT_STACK_MB) * Self::MIB,
        }
    }
}

/// The default time limit of one RUN step.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(3600);

impl Env {
    /// The paths, with the values an empty environment gives (runc, epoch 0, default limits).
    pub fn new(project_dir: PathBuf, home: PathBuf) -> Self {
        Env {
            project_dir,
            home,
            source_date_epoch: 0,
            oci_runtime: OciRuntime::Named("runc".into()),
            run_timeout: RUN_TIMEOUT,
            eval: EvalLimits::resolve(|_| None),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.project_dir.join(crate::lang::CONFIG_FILE)
    }

    /// Where the embedded Nickel library is written.
    pub fn lib_root(&self) -> PathBuf {
        self.home.join("lib")
    }
}

/// The settings of one run of the CLI.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: Env,
    pub format: Format,
    pub verbosity: Verbosity,
    /// Color on stderr (a terminal, and `NO_COLOR` unset).
    pub color: bool,
    /// Color on stdout (a terminal, and `NO_COLOR` unset).
    pub stdout_color: bool,
}

/// The flags that settings are resolved from, as the CLI parsed them.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub directory: Option<PathBuf>,
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
}

/// Whether stderr and stdout are terminals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminals {
    pub stderr: bool,
    pub stdout: bool,
}

impl Settings {
    /// Flags and environment merged, once. `get` reads the environment; `detect` turns the value
    /// of `GALLEY_OCI_RUNTIME` into the runtime to use.
    pub fn resolve(
        flags: &Flags,
        get: impl Fn(&str) -> Option<String>,
        terminals: Terminals,
        detect: impl FnOnce(Option<String>) -> OciRuntime,
    ) -> Self {
        let no_color = get(env_vars::NO_COLOR).is_some_and(|v| !v.is_empty());
        let env = Env {
            project_dir: flags.directory.clone().unwrap_or_else(|| PathBuf::from(".")),
            home: default_home(&get),
            source_date_epoch: get(env_vars::SOURCE_DATE_EPOCH).and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            oci_runtime: detect(get(env_vars::GALLEY_OCI_RUNTIME).filter(|v| !v.is_empty())),
            run_timeout: get(env_vars::GALLEY_RUN_TIMEOUT_SECS)
                .and_then(|v| v.trim().parse().ok())
                .filter(|&s: &u64| s > 0)
                .map_or(RUN_TIMEOUT, Duration::from_secs),
            eval: EvalLimits::resolve(&get),
        };
        Settings {
            env,
            format: flags.format,
            verbosity: Verbosity::from_flags(flags.quiet, flags.verbose),
            color: !no_color && terminals.stderr,
            stdout_color: !no_color && terminals.stdout,
        }
    }
}

/// `GALLEY_HOME`, else `$XDG_DATA_HOME/galley`, else `~/.local/share/galley`.
pub fn default_home(get: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = get(env_vars::GALLEY_HOME).filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = get(env_vars::XDG_DATA_HOME).filter(|h| Path::new(h).is_absolute()) {
        return Path::new(&x).join("galley");
    }
    let home = get(env_vars::HOME).unwrap_or_else(|| "/".into());
    Path::new(&home).join(".local/share/galley")
}

#[cfg(test)]
mod tests;

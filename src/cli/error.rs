//! What a command comes to: an [`ExitStatus`] when it ran, or a [`CliError`] that `main` prints
//! once and turns into the exit code. User errors and bugs in galley get different codes.

use std::process::ExitCode;

use crate::diagnostic::{Code, Diagnostic};

/// Exit code: the answer is "no" (errors in the config, findings, a stale lock, cancelled).
pub const NO: u8 = 1;
/// Exit code: a usage or operational error (bad input, a failed operation).
pub const ERROR: u8 = 2;
/// Exit code: a bug in galley (`EX_SOFTWARE` of sysexits.h).
pub const BUG: u8 = 70;

/// The help line of every bug.
pub const BUG_HELP: &str = "this is a bug in galley; please report it, with the command and the galley.ncl that trigger it";

/// How a command that ran to its end exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// The answer is "no"; what was wrong is already printed.
    No,
    /// `plan --detailed-exitcode`: there are changes (2, as Terraform).
    Changes,
    /// Some of the work failed, each failure already printed (2).
    Failed,
    /// A child's exit code, passed on (`exec`, `logs`).
    Child(i32),
}

impl ExitStatus {
    /// `Success` when `ok`, else `No`.
    pub fn no_unless(ok: bool) -> Self {
        if ok { ExitStatus::Success } else { ExitStatus::No }
    }

    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::No => NO,
            ExitStatus::Changes | ExitStatus::Failed => ERROR,
            ExitStatus::Child(code) => u8::try_from(code).unwrap_or(u8::MAX),
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s.code())
    }
}

/// Why a command stopped.
#[derive(Debug)]
pub enum CliError {
    /// Bad input, or an operation that failed: `error: MESSAGE` and its fix; exit 2.
    User { message: String, help: Option<String> },
    /// The config asks for what the target cannot do (an export's policy check): exit 1.
    Refused { message: String, help: Option<String> },
    /// The project does not evaluate or fails its lints: its errors, and the exit code (1, or 2
    /// for commands where 1 means something else).
    Config { diagnostics: Vec<Diagnostic>, code: u8 },
    /// galley.lock is stale and the command runs only from a current one: what changed; exit 1.
    StaleLock(Vec<String>),
    /// A bug in galley (a panic, a value galley's own schema should have refused): exit 70.
    Bug(String),
}

impl CliError {
    pub fn user(message: impl std::fmt::Display, help: Option<&str>) -> Self {
        CliError::User { message: message.to_string(), help: help.map(str::to_owned) }
    }

    /// The diagnostics of a project that cannot be used; exit 1.
    pub fn config(diagnostics: Vec<Diagnostic>) -> Self {
        CliError::Config { diagnostics, code: NO }
    }

    /// A config error exits 2 instead of 1 (for `lock` 1 means "stale", for `verify` "findings").
    pub fn config_exits_as_error(self) -> Self {
        match self {
            CliError::Config { diagnostics, .. } => CliError::Config { diagnostics, code: ERROR },
            other => other,
        }
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::User { .. } => ERROR,
            CliError::Refused { .. } | CliError::StaleLock(_) => NO,
            CliError::Config { diagnostics, .. } if diagnostics.iter().any(|d| d.code == Code::SchemaBug) => BUG,
            CliError::Config { code, .. } => *code,
            CliError::Bug(_) => BUG,
        }
    }

    /// The one-line message and its help, for the errors printed as one line.
    pub fn line(&self) -> Option<(String, Option<String>)> {
        match self {
            CliError::User { message, help } | CliError::Refused { message, help } => Some((message.clone(), help.clone())),
            CliError::Bug(message) => Some((format!("this is a bug in galley: {message}"), Some(BUG_HELP.to_owned()))),
            CliError::Config { .. } | CliError::StaleLock(_) => None,
        }
    }
}

macro_rules! user_errors {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                CliError::User { help: e.help().map(Into::into), message: e.to_string() }
            }
        }
    )*};
}

user_errors!(
    crate::runtime::RuntimeError,
    crate::lock::LockError,
    crate::lock::StaleError,
    crate::lock::RelockError,
    crate::image::ImageError,
    crate::secrets::StoreError,
    crate::secrets::CryptoError,
);

macro_rules! user_errors_without_help {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                CliError::user(e, None)
            }
        }
    )*};
}

user_errors_without_help!(crate::image::StoreError, crate::image::pull::PullError, std::io::Error);

impl From<crate::kube::KubeError> for CliError {
    fn from(e: crate::kube::KubeError) -> Self {
        let (message, help) = (e.to_string(), e.help());
        if e.is_config() { CliError::Refused { message, help } } else { CliError::User { message, help } }
    }
}

/// The message of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests;

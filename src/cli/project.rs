//! The one way a command loads the project: evaluated, checked and linted, or its diagnostics
//! as the error.

use super::CliError;
use crate::project::{self, Loaded};
use crate::settings::Env;

/// The project, when it evaluates and has no errors; else its diagnostics (exit 1).
pub(crate) fn load(env: &Env) -> Result<Loaded, CliError> {
    match project::load(env, None) {
        Ok(l) if !l.has_errors() => Ok(l),
        Ok(l) => Err(CliError::config(l.diagnostics)),
        Err(d) => Err(CliError::config(d)),
    }
}

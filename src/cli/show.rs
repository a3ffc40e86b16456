//! `galley show`: the resolved config as canonical JSON, the input of every later stage.

use super::{ExitStatus, Outcome, Printer};
use crate::settings::Env;

pub fn run(env: &Env, out: &Printer) -> Outcome {
    let loaded = super::project::load(env)?;
    out.data(crate::canonical::to_string_pretty(&loaded.project));
    Ok(ExitStatus::Success)
}

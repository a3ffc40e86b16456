//! Load a project: evaluate galley.ncl, apply the schema, run the lints. Every command starts here.
//!
//! [`load`] evaluates in a child process under [`EvalLimits`](crate::settings::EvalLimits): a
//! config that loops, recurses or allocates without end becomes a finding, not a hung or crashed
//! galley. [`load_unbounded`] is the evaluation itself, which that child (and the language
//! server's) runs.

mod bounded;
mod wire;

use crate::diagnostic::{self, Diagnostic};
use crate::lang::{self, Evaluated};
use crate::lint;
use crate::model::Project;
use crate::settings::Env;

pub use bounded::{SUBCOMMAND, child_report, confine, load};

/// A project that passed the schema, with the lints' findings (possibly errors).
#[derive(Debug)]
pub struct Loaded {
    pub project: Project,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Evaluate and lint in this process, without limits: only for configs galley trusts, and for
/// the evaluator child. `Err` holds the diagnostics of a config that could not be evaluated.
pub fn load_unbounded(settings: &Env, text: Option<&str>) -> Result<Loaded, Vec<Diagnostic>> {
    evaluate_and_lint(settings, text).map(|(loaded, _)| loaded)
}

/// [`load_unbounded`], with the evaluated JSON the project was read from (what the child sends).
fn evaluate_and_lint(settings: &Env, text: Option<&str>) -> Result<(Loaded, serde_json::Value), Vec<Diagnostic>> {
    let config = settings.config_path();
    let lib_root = settings.lib_root();
    let input = lang::Input { config: &config, text, lib_root: &lib_root };
    let Evaluated { project, json, spans } = lang::evaluate(&input)?;
    let mut diagnostics = lint::run(&project, &spans, &settings.project_dir);
    diagnostic::sort(&mut diagnostics);
    Ok((Loaded { project, diagnostics }, json))
}

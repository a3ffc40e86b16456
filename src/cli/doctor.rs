//! `galley doctor`: check every piece of this host galley needs, one line each with the fix for
//! a failure; exit 0 when nothing fails, 1 when something does.

use super::{ExitStatus, Outcome, Printer};
use crate::exec::System;
use crate::runtime::doctor::{self, Report, Status};
use crate::settings::Env;

pub fn run(env: &Env, out: &Printer) -> Outcome {
    let project = if env.config_path().is_file() {
        match super::project::load(env) {
            Ok(loaded) => Some(loaded.project),
            Err(_) => {
                eprintln!("warning: {} does not evaluate; registry checks skipped", env.config_path().display());
                eprintln!("  help: run `galley check` to see why");
                None
            }
        }
    } else {
        None
    };
    let report = doctor::all(&System, env, project.as_ref());
    if out.json() {
        out.data(serde_json::to_string(&report).expect("report serializes"));
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitStatus::no_unless(report.summary.fail == 0))
}

/// `pass  podman          podman version 4.3.1`, a `help:` line under each failure, a summary.
pub fn render(report: &Report) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0).max(15);
    let mut out = String::new();
    for c in &report.checks {
        let detail = c.detail.lines().collect::<Vec<_>>().join("; ");
        out.push_str(&format!("{}  {:<width$} {detail}\n", c.status.as_str(), c.id));
        if let (Status::Fail, Some(help)) = (c.status, &c.help) {
            out.push_str(&format!("  help: {help}\n"));
        }
    }
    let s = report.summary;
    out.push_str(&format!("{} passed, {} failed, {} skipped\n", s.pass, s.fail, s.skip));
    out
}

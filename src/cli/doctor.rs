//! `galley doctor`: check every piece of this host galley needs, one line each with the fix for
//! a failure; exit 0 when nothing fails, 1 when something does.

use std::process::ExitCode;

use crate::exec::System;
use crate::runtime::doctor::{self, Report, Status};
use crate::settings::{Format, Settings};

pub fn run(settings: &Settings) -> ExitCode {
    let project = if settings.config_path().is_file() {
        match crate::project::load(settings, None) {
            Ok(loaded) if !loaded.has_errors() => Some(loaded.project),
            _ => {
                eprintln!("warning: {} does not evaluate; registry checks skipped", settings.config_path().display());
                eprintln!("  help: run `galley check` to see why");
                None
            }
        }
    } else {
        None
    };
    let runtime_env = std::env::var(crate::env_vars::GALLEY_OCI_RUNTIME).ok();
    let report = doctor::all(&System, settings, runtime_env, project.as_ref());
    match settings.format {
        Format::Json => println!("{}", serde_json::to_string(&report).expect("report serializes")),
        Format::Text => print!("{}", render(&report)),
    }
    if report.summary.fail == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// `pass  podman          podman version 4.3.1`, a `help:` line under each failure, a summary.
pub fn render(report: &Report) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0).max(15);
    let mut out = String::new();
    for c in &report.checks {
        out.push_str(&format!("{}  {:<width$} {}\n", c.status.as_str(), c.id, c.detail));
        if let (Status::Fail, Some(help)) = (c.status, &c.help) {
            out.push_str(&format!("  help: {help}\n"));
        }
    }
    let s = report.summary;
    out.push_str(&format!("{} passed, {} failed, {} skipped\n", s.pass, s.fail, s.skip));
    out
}

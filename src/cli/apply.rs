//! `galley apply`: show the plan, ask, converge the instance. A second apply is a no-op.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::exec::System;
use crate::runtime::apply::{self, Context};
use crate::runtime::images::StoreImages;
use crate::secrets::Resolver;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// Apply without asking
    #[arg(long)]
    pub auto_approve: bool,
    /// Refuse to run unless galley.lock is current, and use its manifests and image digests
    #[arg(long)]
    pub locked: bool,
}

pub fn run(settings: &Settings, args: &ApplyArgs) -> ExitCode {
    let session = match common::open(settings, &args.instance.instance, args.locked) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let _lock = match crate::runtime::state::lock(&session.home, &session.instance) {
        Ok(l) => l,
        Err(e) => return common::fail(settings, &e),
    };
    // Held until the containers exist, so gc keeps the images apply loads for them.
    let _writing = match super::build::writing(settings, &session.loaded.project.name) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let plan = match common::compute(settings, &session) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let text = settings.format == Format::Text;
    if text && (plan.has_changes() || settings.verbosity > 0) {
        print!("{}", plan.render(common::stdout_color()));
    }
    if !plan.has_changes() {
        if text && settings.verbosity >= 0 {
            eprintln!("no changes: instance `{}` matches galley.ncl", session.instance.instance);
        } else if !text {
            println!("{}", serde_json::json!({ "plan": plan, "report": apply::Report::default() }));
        }
        return ExitCode::SUCCESS;
    }
    if !args.auto_approve
        && let Some(code) = confirm(settings, "apply these changes?")
    {
        return code;
    }
    let podman = session.podman();
    let secrets = match Resolver::for_apply(&settings.home, settings.project_dir.clone(), &session.loaded.project, &System) {
        Ok(s) => s,
        Err(e) => return super::fail(settings, e, Some("set GALLEY_MASTER_KEY to the key of the project's secret store")),
    };
    let pinned = session.lock.as_ref().map(crate::lock::Lock::pinned_bases).unwrap_or_default();
    let images = StoreImages::new(settings, &session.loaded.project, pinned);
    let lib_root = settings.lib_root();
    let ctx = Context {
        home: &session.home,
        lib_root: &lib_root,
        project: &session.loaded.project,
        instance: &session.instance,
        podman: &podman,
        facts: &session.facts,
        images: &images,
        secrets: &secrets,
    };
    let quiet = settings.verbosity < 0 || !text;
    let report = match apply::apply(&ctx, &plan, &mut |line| if !quiet { eprintln!("{line}") }) {
        Ok(r) => r,
        Err(e) => return common::fail(settings, &e),
    };
    if !text {
        println!("{}", serde_json::json!({ "plan": plan, "report": report }));
    } else {
        for f in &report.failures {
            eprintln!("error: sandbox `{}` failed: {}", f.sandbox, f.message);
            if let Some(log) = &f.log {
                eprintln!("  log tail:\n{}", indent(log));
            }
            if let Some(h) = &f.help {
                eprintln!("  help: {h}");
            }
        }
        println!(
            "applied: {} started, {} destroyed, {} unchanged, {} failed",
            report.started.len(),
            report.destroyed.len(),
            report.unchanged.len(),
            report.failures.len()
        );
    }
    if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Ask on the terminal; `Some(code)` means stop. Refuses when stdin is not a terminal.
pub fn confirm(settings: &Settings, question: &str) -> Option<ExitCode> {
    if !std::io::stdin().is_terminal() {
        return Some(super::fail(
            settings,
            "refusing to change sandboxes without confirmation: standard input is not a terminal",
            Some("review `galley plan`, then pass --auto-approve"),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        None
    } else {
        eprintln!("cancelled");
        Some(ExitCode::from(1))
    }
}

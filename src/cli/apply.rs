//! `galley apply`: show the plan, ask, converge the instance. A second apply is a no-op.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use super::plan::{self as common, InstanceArg};
use super::{CliError, ExitStatus, Outcome, Printer};
use crate::exec::System;
use crate::runtime::apply::{self, Context};
use crate::runtime::images::StoreImages;
use crate::secrets::Resolver;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    #[command(flatten)]
    pub host_ports: common::HostPortsArg,
    /// Apply without asking
    #[arg(long)]
    pub auto_approve: bool,
    /// Refuse to run unless galley.lock is current, and use its manifests and image digests
    #[arg(long)]
    pub locked: bool,
}

pub fn run(env: &Env, out: &Printer, args: &ApplyArgs) -> Outcome {
    let target = super::audit_log::instance_target(env, &args.instance.instance);
    super::audit_log::audited(env, "apply", &target, || apply_logged(env, out, args))
}

fn apply_logged(env: &Env, out: &Printer, args: &ApplyArgs) -> Outcome {
    let common::Opened { mut session, live, lock: _lock } = common::open_live(env, out, &args.instance.instance, args.locked, true)?;
    let ports = common::host_ports(&mut session, &args.host_ports)?;
    // Held until the containers exist, so gc keeps the images apply loads for them.
    let _writing = super::build::writing(env, &session.loaded.project.name)?;
    let plan = common::compute(&session, &live);
    if out.text() && (plan.has_changes() || out.verbosity.verbose()) {
        print!("{}", plan.render(out.stdout_color));
        for line in &ports {
            println!("  host port: {line}");
        }
    }
    if !plan.has_changes() {
        out.text_note(format_args!("no changes: instance `{}` matches galley.ncl", session.instance.instance));
        if out.json() {
            out.data(serde_json::json!({ "plan": plan, "report": apply::Report::default() }));
        }
        return Ok(ExitStatus::Success);
    }
    if !args.auto_approve && !confirm("apply these changes?")? {
        return Ok(ExitStatus::No);
    }
    let podman = session.podman();
    let secrets = Resolver::for_apply(&env.home, env.project_dir.clone(), &session.loaded.project, &System)
        .map_err(|e| CliError::user(e, Some("set GALLEY_MASTER_KEY to the key of the project's secret store")))?;
    let pinned = session.lock.as_ref().map(crate::lock::Lock::pinned_bases).unwrap_or_default();
    let packages = session.lock.as_ref().map(crate::lock::Lock::pinned_packages).unwrap_or_default();
    let images = StoreImages::new(env, &session.loaded.project, pinned).with_packages(packages);
    let lib_root = env.lib_root();
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
    let report = apply::apply(&ctx, &plan, &mut |line| out.text_note(line))?;
    if out.json() {
        out.data(serde_json::json!({ "plan": plan, "report": report }));
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
    Ok(if report.failures.is_empty() { ExitStatus::Success } else { ExitStatus::Failed })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Ask on the terminal whether to go on (a "no" prints `cancelled`). Refuses when stdin is not
/// a terminal.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::user(
            "refusing to change sandboxes without confirmation: standard input is not a terminal",
            Some("review `galley plan`, then pass --auto-approve"),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    let yes = matches!(answer.trim(), "y" | "Y" | "yes");
    if !yes {
        eprintln!("cancelled");
    }
    Ok(yes)
}

//! `galley gc [--dry-run]`: remove the store blobs, cache entries and podman images that no
//! recorded project's lock and no galley container needs, and print what that freed.

use clap::Args;

use crate::exec::System;
use crate::image::gc::{GcError, Report};
use super::{CliError, ExitStatus, Outcome, Printer};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print the same report, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(env: &Env, out: &Printer, args: &GcArgs) -> Outcome {
    let report = crate::runtime::gc::run(&env.home, &System, args.dry_run).map_err(|e| match e {
        GcError::Busy { .. } => CliError::user(e, Some("run `galley gc` again once it has finished")),
        e => CliError::user(e, None),
    })?;
    if out.json() {
        out.json_pretty(&report);
    } else {
        print!("{}", text(&report));
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitStatus::Success)
}

fn text(r: &Report) -> String {
    let mut out = String::from(if r.dry_run { "would remove:\n" } else { "removed:\n" });
    for (kind, freed) in r.kinds() {
        out.push_str(&format!("  {:>6} {kind:<20} {:>10}\n", freed.count, bytes(freed.bytes)));
    }
    for dir in &r.dropped_projects {
        let verb = if r.dry_run { "would drop" } else { "dropped" };
        out.push_str(&format!("{verb} project {dir}: its directory is gone\n"));
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    out.push_str(&format!("{verb} {}; kept {} store blobs ({})\n", bytes(r.bytes), r.kept.count, bytes(r.kept.bytes)));
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let (mut value, mut unit) = (n as f64 / 1024.0, 0);
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

//! `galley verify`: audit running sandboxes (or an image) from the host; exit 1 on findings.

use clap::Args;
use rayon::prelude::*;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::audit::{self, Sink, report::Report};
use crate::exec::System;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Sandboxes to audit (all running ones of the instance when none is named)
    #[arg(value_name = "SANDBOX", conflicts_with = "image")]
    pub sandboxes: Vec<String>,
    /// Instance of the project to audit
    #[arg(long, default_value = crate::domain::DEFAULT_INSTANCE)]
    pub instance: String,
    /// Scan an image without running it (setuid files, sockets, root user)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

pub fn run(env: &Env, out: &Printer, args: &VerifyArgs, sarif: bool) -> Outcome {
    let report = match &args.image {
        Some(reference) => {
            let scanned = audit::image::scan_image(&System, reference)
                .map_err(|e| CliError::user(e, Some("check the reference with `podman image ls`")))?;
            Report { project: String::new(), instance: String::new(), sandboxes: vec![scanned] }
        }
        None => live(env, out, args)?,
    };
    if sarif {
        out.json_pretty(&audit::report::sarif(&report));
    } else if out.json() {
        out.json_pretty(&audit::report::json(&report));
    } else {
        print!("{}", audit::report::text(&report, out.stdout_color));
    }
    Ok(ExitStatus::no_unless(report.errors() == 0))
}

/// Audit the running sandboxes.
fn live(env: &Env, out: &Printer, args: &VerifyArgs) -> Result<Report, CliError> {
    // A config that does not evaluate cannot be audited against: an error, not a finding.
    let loaded = super::project::load(env).map_err(CliError::config_exits_as_error)?;
    let project = &loaded.project;
    for s in &args.sandboxes {
        if !project.sandboxes.contains_key(s) {
            return Err(CliError::user(
                format!("no sandbox named `{s}` in the project"),
                Some("see `galley show` for the declared sandboxes"),
            ));
        }
    }
    let audit_error = |e: audit::AuditError| CliError::user(e, Some("start the sandboxes with `galley apply`"));
    let observed = audit::observe(&System, &project.name, &args.instance).map_err(audit_error)?;
    let chosen = audit::select(&observed, &args.sandboxes, &project.name, &args.instance).map_err(audit_error)?;
    let owned: Vec<audit::Observed> = chosen.iter().map(|o| (*o).clone()).collect();
    // The lock's manifests carry the image digests; without a current lock, the config's.
    let desired = match super::plan::current_lock(env, out, project, false)? {
        Some(lock) => lock.sandboxes.into_iter().map(|(name, s)| (name, s.manifest)).collect(),
        None => audit::desired(project, &owned, &env.lib_root()).map_err(audit_error)?,
    };
    // The secret check searches for the values apply delivered, read back from their files.
    let instance = crate::runtime::Instance::new(&project.name, &args.instance).map_err(|e| CliError::user(e, None))?;
    let secrets = crate::runtime::secrets_dir::SecretsDir::new(instance.run_dir(&env.home));
    out.text_note(format_args!("verifying {} container(s) of project {}, instance {}", chosen.len(), project.name, args.instance));
    let mut cx = audit::Context::new(&System, &args.instance, &chosen).map_err(audit_error)?;
    cx.host_side = host_side(cx.internal.keys());
    // Containers are independent: audit them in parallel, report them in order.
    let sandboxes = chosen
        .par_iter()
        .map(|o| match desired.get(&o.sandbox) {
            Some(m) => audit::audit(o, m, &cx, &secrets.sandbox_dir(&o.sandbox)),
            None => {
                let mut sink = Sink::new(&o.sandbox, &o.name);
                sink.fail(
                    audit::MANIFEST,
                    format!("container {} claims no sandbox declared in the project", o.name),
                    "a declared sandbox",
                    if o.sandbox.is_empty() { "no io.galley.sandbox label".into() } else { o.sandbox.clone() },
                );
                audit::SandboxReport::from_sink(sink)
            }
        })
        .collect();
    Ok(Report { project: project.name.to_string(), instance: args.instance.clone(), sandboxes })
}

/// Whether the host side of each network is closed, read from the firewall (which needs root:
/// without it the networks are left out, and their check is reported as not run).
fn host_side<'a>(networks: impl Iterator<Item = &'a String>) -> std::collections::BTreeMap<String, Result<(), String>> {
    use crate::runtime::firewall::{self, HostSide};
    let podman = crate::runtime::podman::Podman { runner: &System, runtime: None };
    if !crate::runtime::host::system().root {
        return Default::default();
    }
    networks
        .map(|n| (n.clone(), HostSide::inspect(&podman, n).map_err(|e| e.to_string()).and_then(|side| firewall::status(&System, &side))))
        .collect()
}

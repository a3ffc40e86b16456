//! `galley verify`: audit running sandboxes (or an image) from the host; exit 1 on findings.

use std::process::ExitCode;

use clap::Args;
use rayon::prelude::*;

use crate::audit::{self, Sink, report::Report};
use crate::exec::System;
use crate::project;
use crate::settings::{Format, Settings};

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

pub fn run(settings: &Settings, args: &VerifyArgs, sarif: bool) -> ExitCode {
    let report = match &args.image {
        Some(reference) => match audit::image::scan_image(&System, reference) {
            Ok(s) => Report { project: String::new(), instance: String::new(), sandboxes: vec![s] },
            Err(e) => return super::fail(settings, e, Some("check the reference with `podman image ls`")),
        },
        None => match live(settings, args) {
            Ok(Ok(report)) => report,
            Ok(Err(code)) => return code,
            Err(e) => return super::fail(settings, e, Some("start the sandboxes with `galley apply`")),
        },
    };
    if sarif {
        println!("{}", serde_json::to_string_pretty(&audit::report::sarif(&report)).expect("sarif serializes"));
    } else if settings.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&audit::report::json(&report)).expect("report serializes"));
    } else {
        print!(
            "{}",
            audit::report::text(&report, settings.color && std::io::IsTerminal::is_terminal(&std::io::stdout()))
        );
    }
    if report.errors() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Audit the running sandboxes; the inner `Err` is an exit code already reported.
fn live(settings: &Settings, args: &VerifyArgs) -> Result<Result<Report, ExitCode>, audit::AuditError> {
    let loaded = match project::load(settings, None) {
        Ok(l) if !l.has_errors() => l,
        // A config that does not evaluate cannot be audited against: an error, not a finding.
        Ok(l) => return Ok(Err(config_error(settings, &l.diagnostics))),
        Err(d) => return Ok(Err(config_error(settings, &d))),
    };
    let project = &loaded.project;
    for s in &args.sandboxes {
        if !project.sandboxes.contains_key(s) {
            return Ok(Err(super::fail(
                settings,
                format!("no sandbox named `{s}` in the project"),
                Some("see `galley show` for the declared sandboxes"),
            )));
        }
    }
    let observed = audit::observe(&System, &project.name, &args.instance)?;
    let chosen = audit::select(&observed, &args.sandboxes, &project.name, &args.instance)?;
    let owned: Vec<audit::Observed> = chosen.iter().map(|o| (*o).clone()).collect();
    // The lock's manifests carry the image digests; without a current lock, the config's.
    let desired = match super::plan::current_lock(settings, project, false) {
        Ok(Some(lock)) => lock.sandboxes.into_iter().map(|(name, s)| (name, s.manifest)).collect(),
        Ok(None) => audit::desired(project, &owned, &settings.lib_root())?,
        Err(code) => return Ok(Err(code)),
    };
    let values = ProjectValues::new(settings, project);
    if settings.format == Format::Text && settings.verbosity >= 0 {
        eprintln!("verifying {} container(s) of project {}, instance {}", chosen.len(), project.name, args.instance);
    }
    let cx = audit::Context::new(&System, &args.instance, &chosen)?;
    // Containers are independent: audit them in parallel, report them in order.
    let sandboxes = chosen
        .par_iter()
        .map(|o| match desired.get(&o.sandbox) {
            Some(m) => audit::audit(o, m, &cx, &values.for_sandbox(&m.secrets)),
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
    Ok(Ok(Report { project: project.name.to_string(), instance: args.instance.clone(), sandboxes }))
}

fn config_error(settings: &Settings, diagnostics: &[crate::diagnostic::Diagnostic]) -> ExitCode {
    super::render::report(settings, diagnostics, true);
    ExitCode::from(2)
}

/// Secret values to search for in the sandboxes' processes, from every source the host can
/// resolve; the store only when `GALLEY_MASTER_KEY` opens it (otherwise those are skipped).
struct ProjectValues {
    project_dir: std::path::PathBuf,
    store: Option<crate::secrets::Store>,
}

impl ProjectValues {
    fn new(settings: &Settings, project: &crate::model::Project) -> Self {
        let store = crate::secrets::master_key()
            .ok()
            .and_then(|key| crate::secrets::Store::open(&settings.home, &project.name, key).ok());
        ProjectValues { project_dir: settings.project_dir.clone(), store }
    }

    fn for_sandbox<'a>(&'a self, secrets: &'a std::collections::BTreeMap<String, crate::model::Secret>) -> SandboxValues<'a> {
        SandboxValues { values: self, secrets }
    }
}

struct SandboxValues<'a> {
    values: &'a ProjectValues,
    secrets: &'a std::collections::BTreeMap<String, crate::model::Secret>,
}

impl audit::SecretValues for SandboxValues<'_> {
    fn value(&self, name: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let source = self.secrets.get(name)?;
        let v = crate::secrets::resolve(&self.values.project_dir, name, source, self.values.store.as_ref(), &System).ok()?;
        Some(zeroize::Zeroizing::new(v.expose().to_vec()))
    }
}

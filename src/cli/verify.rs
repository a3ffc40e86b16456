//! `galley verify`: audit running sandboxes (or an image) from the host; exit 1 on findings.

use clap::Args;
use rayon::prelude::*;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::audit::{self, Sink, report::Report};
use crate::exec::{Runner, Scrubbed, System};
use crate::lock::Lock;
use crate::model::Network;
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
    let start = std::time::Instant::now();
    let timing = |what: &str| {
        if out.verbosity.timings() {
            eprintln!("    {what}: {:.3}s", start.elapsed().as_secs_f64());
        }
    };
    let audit_error = |e: audit::AuditError| CliError::user(e, Some("start the sandboxes with `galley apply`"));
    // podman is asked while the config evaluates, about the containers and networks galley.lock
    // names; if the evaluated config names others, it is asked again. These early calls run
    // before the config says which variables hold its secrets, so they inherit only what podman
    // and iptables read.
    let early = Lock::read(&env.project_dir.join(crate::lock::LOCK_FILE))
        .ok()
        .flatten()
        .and_then(|l| Targets::new(&l.project.name, l.sandboxes.iter().map(|(n, s)| (n, s.manifest.network)), args));
    // The firewall is read once, for every network, and only as root (without it the networks
    // are left out, and their check is reported as not run).
    let root = crate::runtime::host::system().root;
    let scrubbed = Scrubbed(&System);
    let (loaded, observed, inspected, table, lock) = std::thread::scope(|s| {
        let asked = early.map(|t| (t.clone(), t.ask(s, &scrubbed)));
        let table = root.then(|| s.spawn(|| crate::runtime::firewall::Snapshot::read(&scrubbed)));
        // A config that does not evaluate cannot be audited against: an error, not a finding.
        let loaded = super::project::load(env).map_err(CliError::config_exits_as_error)?;
        let project = &loaded.project;
        timing("evaluated");
        for s in &args.sandboxes {
            if !project.sandboxes.contains_key(s) {
                return Err(CliError::user(
                    format!("no sandbox named `{s}` in the project"),
                    Some("see `galley show` for the declared sandboxes"),
                ));
            }
        }
        let want = Targets::new(&project.name, project.sandboxes.iter().map(|(n, s)| (n, s.network)), args)
            .ok_or_else(|| CliError::user(format!("invalid instance name `{}`", args.instance), None))?;
        let asked = match asked {
            Some((t, asked)) if t == want => asked,
            _ => want.ask(s, &System),
        };
        let lock = super::plan::current_lock(env, out, project, false);
        timing("lock read");
        let join = "audit thread";
        let observed = asked.0.join().expect(join);
        timing("podman answered");
        let inspected = asked.1.join().expect(join);
        Ok((loaded, observed, inspected, table.map(|t| t.join().expect(join)), lock))
    })?;
    let project = &loaded.project;
    let instance = crate::runtime::Instance::new(&project.name, &args.instance).map_err(|e| CliError::user(e, None))?;
    timing("firewall read");
    let (observed, running) = observed.map_err(audit_error)?;
    let chosen = audit::select(&observed, &args.sandboxes, &project.name, &args.instance).map_err(audit_error)?;
    let owned: Vec<audit::Observed> = chosen.iter().map(|o| (*o).clone()).collect();
    // The lock's manifests carry the image digests; without a current lock, the config's.
    let desired = match lock? {
        Some(lock) => lock.sandboxes.into_iter().map(|(name, s)| (name, s.manifest)).collect(),
        None => audit::desired(project, &owned, &env.lib_root()).map_err(audit_error)?,
    };
    // The secret check searches for the values apply delivered, read back from their files.
    let secrets = crate::runtime::secrets_dir::SecretsDir::new(instance.run_dir(&env.home));
    out.text_note(format_args!("verifying {} container(s) of project {}, instance {}", chosen.len(), project.name, args.instance));
    let inspected = inspected.map_err(audit_error)?;
    let mut cx = audit::Context::new(&System, &args.instance, &chosen, inspected, running).map_err(audit_error)?;
    if let Some(table) = table {
        cx.host_side = host_side(&cx.networks, &table);
    }
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
    timing("audited");
    Ok(Report { project: project.name.to_string(), instance: args.instance.clone(), sandboxes })
}

/// Whether the host side of each network is closed, from one reading of the firewall.
fn host_side(
    networks: &std::collections::BTreeMap<String, serde_json::Value>,
    table: &crate::runtime::firewall::Snapshot,
) -> std::collections::BTreeMap<String, Result<(), String>> {
    use crate::runtime::firewall::HostSide;
    networks
        .iter()
        .map(|(n, inspect)| {
            let one = serde_json::to_vec(&[inspect]).unwrap_or_default();
            (n.clone(), HostSide::parse(n, &one).map_err(|e| e.to_string()).and_then(|side| table.status(&side)))
        })
        .collect()
}

/// What verify asks podman about: the containers the declared (or named) sandboxes have and
/// the networks they join.
#[derive(Debug, Clone, PartialEq)]
struct Targets {
    project: String,
    instance: String,
    containers: Vec<String>,
    networks: Vec<String>,
}

type Asked<'scope> = (
    std::thread::ScopedJoinHandle<'scope, Result<(Vec<audit::Observed>, Vec<(String, u32)>), audit::AuditError>>,
    std::thread::ScopedJoinHandle<'scope, Result<std::collections::BTreeMap<String, serde_json::Value>, audit::AuditError>>,
);

impl Targets {
    /// The targets of `sandboxes` (name and network) of `project`; `None` for an invalid instance name.
    fn new<'a>(project: &str, sandboxes: impl Iterator<Item = (&'a String, Network)>, args: &VerifyArgs) -> Option<Targets> {
        let instance = crate::runtime::Instance::new(project, &args.instance).ok()?;
        let all: std::collections::BTreeMap<&String, Network> = sandboxes.collect();
        let declared: Vec<&String> = if args.sandboxes.is_empty() { all.keys().copied().collect() } else { args.sandboxes.iter().collect() };
        let mut networks: Vec<String> =
            declared.iter().filter_map(|s| all.get(*s)).flat_map(|n| instance.networks_for(*n)).map(|(n, _)| n).collect();
        networks.sort();
        networks.dedup();
        Some(Targets {
            project: project.to_owned(),
            instance: args.instance.clone(),
            containers: declared.iter().map(|s| instance.container(s)).collect(),
            networks,
        })
    }

    /// Ask podman, on threads of `s`: the instance's containers (those declared inspected while
    /// podman lists them, those found only by their labels after) and the networks.
    fn ask<'scope, 'env>(self, s: &'scope std::thread::Scope<'scope, 'env>, runner: &'env dyn Runner) -> Asked<'scope> {
        let Targets { project, instance, containers, networks } = self;
        (
            s.spawn(move || audit::observe(runner, &project, &instance, &containers)),
            s.spawn(move || audit::podman::inspect_networks(runner, &networks)),
        )
    }
}

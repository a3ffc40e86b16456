//! `galley destroy`: remove an instance's containers, networks and secret files; its volumes
//! only with `--volumes`.

use std::process::ExitCode;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::runtime::plan;
use crate::runtime::secrets_dir::SecretsDir;
use crate::runtime::state;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// Also remove the instance's volumes and the data in them
    #[arg(long)]
    pub volumes: bool,
    /// Destroy without asking
    #[arg(long)]
    pub auto_approve: bool,
}

pub fn run(settings: &Settings, args: &DestroyArgs) -> ExitCode {
    let session = match common::open(settings, &args.instance.instance, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let _lock = match crate::runtime::state::lock(&session.home, &session.instance) {
        Ok(l) => l,
        Err(e) => return common::fail(settings, &e),
    };
    let podman = session.podman();
    let live = match plan::live(&podman, &session.instance) {
        Ok(l) => l,
        Err(e) => return common::fail(settings, &e),
    };
    let containers: Vec<String> = live.containers.iter().map(|c| c.name.clone()).collect();
    let volumes = if args.volumes { live.volumes.clone() } else { vec![] };
    let kept = if args.volumes { vec![] } else { live.volumes.clone() };
    if settings.format == Format::Text {
        for (sign, list) in [("- container", &containers), ("- network  ", &live.networks), ("- volume   ", &volumes)] {
            for name in list {
                println!("{sign} {name}");
            }
        }
        for v in &kept {
            println!("= volume    {v} (kept; pass --volumes to remove)");
        }
    }
    let anything = !containers.is_empty() || !live.networks.is_empty() || !volumes.is_empty();
    if anything
        && !args.auto_approve
        && let Some(code) = super::apply::confirm(settings, "destroy these?")
    {
        return code;
    }
    let steps = [("container", &containers), ("network", &live.networks), ("volume", &volumes)];
    for (kind, names) in steps {
        if let Err(e) = podman.remove(kind, names) {
            return common::fail(settings, &e);
        }
    }
    SecretsDir::new(session.instance.run_dir(&session.home)).remove_all();
    state::remove_all(&session.home, &session.instance);
    match settings.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "containers": containers, "networks": live.networks, "volumes": volumes, "kept_volumes": kept })
        ),
        Format::Text if settings.verbosity >= 0 => eprintln!("destroyed instance `{}`", session.instance.instance),
        Format::Text => {}
    }
    ExitCode::SUCCESS
}

//! `galley destroy`: remove an instance's containers, networks and secret files; its volumes
//! only with `--volumes`.

use clap::Args;

use super::plan::{self as common, InstanceArg};
use super::{ExitStatus, Outcome, Printer};
use crate::runtime::plan;
use crate::runtime::secrets_dir::SecretsDir;
use crate::runtime::state;
use crate::settings::Env;

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

pub fn run(env: &Env, out: &Printer, args: &DestroyArgs) -> Outcome {
    let target = super::audit_log::instance_target(env, &args.instance.instance);
    super::audit_log::audited(env, "destroy", &target, || destroy_logged(env, out, args))
}

fn destroy_logged(env: &Env, out: &Printer, args: &DestroyArgs) -> Outcome {
    let session = common::open(env, out, &args.instance.instance, false)?;
    let _lock = crate::runtime::state::lock(&session.home, &session.instance)?;
    let podman = session.podman();
    let live = plan::live(&podman, &session.instance)?;
    let containers: Vec<String> = live.containers.iter().map(|c| c.name.clone()).collect();
    let volumes = if args.volumes { live.volumes.clone() } else { vec![] };
    let kept = if args.volumes { vec![] } else { live.volumes.clone() };
    if out.text() {
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
    if anything && !args.auto_approve && !super::apply::confirm("destroy these?")? {
        return Ok(ExitStatus::No);
    }
    let steps = [("container", &containers), ("network", &live.networks), ("volume", &volumes)];
    for (kind, names) in steps {
        podman.remove(kind, names)?;
    }
    SecretsDir::new(session.instance.run_dir(&session.home)).remove_all();
    state::remove_all(&session.home, &session.instance);
    if out.json() {
        out.data(serde_json::json!({ "containers": containers, "networks": live.networks, "volumes": volumes, "kept_volumes": kept }));
    }
    out.text_note(format_args!("destroyed instance `{}`", session.instance.instance));
    Ok(ExitStatus::Success)
}

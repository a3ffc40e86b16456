//! `galley status`: the instance's live sandboxes, their state and ports, and whether each still
//! matches the manifest galley.ncl declares.

use clap::Args;
use serde::Serialize;

use super::plan::{self as common, InstanceArg};
use super::{ExitStatus, Outcome, Printer};
use crate::runtime::forward;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
}

#[derive(Debug, Serialize)]
struct Row {
    sandbox: String,
    container: String,
    state: String,
    ports: Vec<String>,
    /// `matches`, `differs`, `undeclared` or `absent`.
    manifest: &'static str,
}

pub fn run(env: &Env, out: &Printer, args: &StatusArgs) -> Outcome {
    let session = common::open(env, out, &args.instance.instance, false)?;
    let live = session.podman().containers(&session.instance)?;
    let mut rows: Vec<Row> = live
        .iter()
        .map(|c| {
            let declared = session.desired.iter().find(|m| m.sandbox == c.sandbox());
            let manifest = match declared {
                None => "undeclared",
                Some(m) if m.digest().to_string() == c.manifest_digest() => "matches",
                Some(_) => "differs",
            };
            // A sandbox without egress publishes nothing through podman: its ports are the
            // forwarder's, shown while every one of them is running.
            let ports = match declared {
                Some(m) if forward::forwarded(m) && forward::running(&session.home, &session.instance, m) => m
                    .ports
                    .iter()
                    .map(|p| format!("{}->{}/{} (forwarded)", std::net::SocketAddr::new(p.address, p.host), p.container, p.protocol.as_str()))
                    .collect(),
                _ => c.ports.clone(),
            };
            Row { sandbox: c.sandbox().to_owned(), container: c.name.clone(), state: c.state.clone(), ports, manifest }
        })
        .collect();
    for m in &session.desired {
        if !rows.iter().any(|r| r.sandbox == m.sandbox) {
            let container = session.instance.container(&m.sandbox);
            rows.push(Row { sandbox: m.sandbox.clone(), container, state: "absent".into(), ports: vec![], manifest: "absent" });
        }
    }
    rows.sort_by(|a, b| a.sandbox.cmp(&b.sandbox));
    if out.json() {
        out.json_pretty(&rows);
        return Ok(ExitStatus::Success);
    }
    println!("{:<20} {:<10} {:<10} {:<40} PORTS", "SANDBOX", "STATE", "MANIFEST", "CONTAINER");
    for r in &rows {
        println!("{:<20} {:<10} {:<10} {:<40} {}", r.sandbox, r.state, r.manifest, r.container, r.ports.join(", "));
    }
    Ok(ExitStatus::Success)
}

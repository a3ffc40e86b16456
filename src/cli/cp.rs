//! `galley cp`: copy files into (`galley cp LOCAL SANDBOX:PATH`) or out of
//! (`galley cp SANDBOX:PATH LOCAL`) a sandbox's volumes. What comes out is read beneath the
//! volume's mountpoint without following links, within the `GALLEY_CP_MAX_*` caps, and lands
//! in LOCAL whole or not at all.

use std::path::Path;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use super::{CliError, ExitStatus, Outcome, Printer};
use crate::runtime::copy_out::Limits;
use crate::runtime::{cp, RuntimeError};
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct CpArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// LOCAL or SANDBOX:PATH
    pub source: String,
    /// LOCAL or SANDBOX:PATH (a directory: the source is copied into it)
    pub destination: String,
}

pub fn run(env: &Env, out: &Printer, args: &CpArgs) -> Outcome {
    let session = common::open(env, out, &args.instance.instance, false)?;
    let remote = |s: &str| {
        let (name, path) = s.split_once(':')?;
        session.desired.iter().find(|m| m.sandbox == name).map(|m| (m, path.to_owned()))
    };
    let podman = session.podman();
    let result = match (remote(&args.source), remote(&args.destination)) {
        (None, Some((m, path))) => {
            let logged = super::audit_log::instance_target(env, &format!("{}/{}:{path}", args.instance.instance, m.sandbox));
            let mut done = None;
            super::audit_log::audited(env, "cp.in", &logged, || {
                let target = cp::volume_path(m, &path)?;
                let (uid, gid) = cp::owner(m)?;
                let (tar, skipped) = cp::archive(Path::new(&args.source), uid, gid)?;
                let dest = format!("{}:{target}", session.instance.container(&m.sandbox));
                podman.runner.check(&podman.cmd().args(["cp", "-", &dest]).stdin(tar).timeout(crate::exec::PODMAN_COPY_TIMEOUT)).map_err(RuntimeError::from)?;
                done = Some(skipped);
                Ok(ExitStatus::Success)
            })?;
            Ok::<_, RuntimeError>((None, done.expect("set when the copy ran")))
        }
        (Some((m, path)), None) => (|| {
            let limits = Limits::from_env(|k| std::env::var(k).ok())?;
            let copied = cp::copy_out(&podman, &session.instance, m, &path, Path::new(&args.destination), limits)?;
            Ok((Some(copied.files), copied.skipped))
        })(),
        _ => {
            return Err(CliError::user(
                "exactly one of the two paths must be SANDBOX:PATH, naming a sandbox of the project",
                Some("galley cp ./notes agent:notes  or  galley cp agent:out ./out"),
            ));
        }
    };
    let (written, skipped) = result?;
    if out.json() {
        out.data(serde_json::json!({ "written": written, "skipped": skipped }));
    } else {
        for s in &skipped {
            eprintln!("warning: skipped {}: {}", s.path, s.reason);
        }
        if let Some(n) = written {
            out.note(format_args!("copied {n} files"));
        }
    }
    Ok(ExitStatus::no_unless(skipped.is_empty()))
}

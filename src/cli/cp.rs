//! `galley cp`: copy files into (`galley cp LOCAL SANDBOX:PATH`) or out of
//! (`galley cp SANDBOX:PATH LOCAL`) a sandbox's volumes. What comes out is extracted by a
//! strict extractor that never writes outside LOCAL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::plan::{self as common, InstanceArg};
use crate::runtime::{cp, RuntimeError};
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct CpArgs {
    #[command(flatten)]
    pub instance: InstanceArg,
    /// LOCAL or SANDBOX:PATH
    pub source: String,
    /// LOCAL or SANDBOX:PATH (a directory: the source is copied into it)
    pub destination: String,
}

pub fn run(settings: &Settings, args: &CpArgs) -> ExitCode {
    let session = match common::open(settings, &args.instance.instance, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let remote = |s: &str| {
        let (name, path) = s.split_once(':')?;
        session.desired.iter().find(|m| m.sandbox == name).map(|m| (m, path.to_owned()))
    };
    let podman = session.podman();
    let result = match (remote(&args.source), remote(&args.destination)) {
        (None, Some((m, path))) => (|| {
            let target = cp::volume_path(m, &path)?;
            let (uid, gid) = cp::owner(m)?;
            let (tar, skipped) = cp::archive(Path::new(&args.source), uid, gid)?;
            let dest = format!("{}:{target}", session.instance.container(&m.sandbox));
            podman.runner.check(&podman.cmd().args(["cp", "-", &dest]).stdin(tar))?;
            Ok::<_, RuntimeError>((None, skipped))
        })(),
        (Some((m, path)), None) => (|| {
            let source = cp::volume_path(m, &path)?;
            let from = format!("{}:{source}", session.instance.container(&m.sandbox));
            let out = podman.runner.check(&podman.cmd().args(["cp", &from, "-"]))?;
            let dest = PathBuf::from(&args.destination);
            if !dest.is_dir() {
                fs_err::create_dir(&dest).map_err(RuntimeError::io(&dest))?;
            }
            let (written, skipped) = cp::extract(out.stdout.as_slice(), &dest)?;
            Ok((Some(written), skipped))
        })(),
        _ => {
            return super::fail(
                settings,
                "exactly one of the two paths must be SANDBOX:PATH, naming a sandbox of the project",
                Some("galley cp ./notes agent:notes  or  galley cp agent:out ./out"),
            );
        }
    };
    let (written, skipped) = match result {
        Ok(r) => r,
        Err(e) => return common::fail(settings, &e),
    };
    match settings.format {
        Format::Json => println!("{}", serde_json::json!({ "written": written, "skipped": skipped })),
        Format::Text => {
            for s in &skipped {
                eprintln!("warning: skipped {}: {}", s.path, s.reason);
            }
            if let (Some(n), true) = (written, settings.verbosity >= 0) {
                eprintln!("copied {n} files");
            }
        }
    }
    if skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

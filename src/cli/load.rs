//! `galley load IMAGE`: build the image (cached) and load it into podman by digest, tagged
//! `localhost/galley/<project>/<image>:<short digest>`. Nothing is copied when podman already has
//! the image (podman's image id is the config digest).

use clap::Args;
use serde_json::json;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::exec::System;
use crate::image;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Name of an image of this project
    pub image: String,
}

pub fn run(env: &Env, out: &Printer, args: &LoadArgs) -> Outcome {
    let project = super::project::load(env)?.project;
    super::build::host_checks(&project, std::slice::from_ref(&args.image), true)?;
    let _writing = super::build::writing(env, &project.name)?;
    let (built, store) = super::build::build_one(env, out, &project, &args.image)?;
    let tag = image::podman::tag(&project.name, &args.image, &built.manifest_digest);
    let copied = image::podman::load(&System, &store, &built, &tag).map_err(|e| CliError::user(e, None))?;
    if out.json() {
        out.data(json!({ "image": args.image, "tag": tag, "digest": built.manifest_digest, "id": built.config_digest, "copied": copied }));
    } else {
        out.data(&tag);
    }
    Ok(ExitStatus::Success)
}


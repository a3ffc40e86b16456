//! `galley push IMAGE REF`: build the image (cached) and push it to a registry, by digest.

use clap::Args;
use serde_json::json;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::image::pull::Puller;
use crate::settings::Env;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Name of an image of this project
    pub image: String,
    /// Fully qualified destination (`host[:port]/repository:tag`)
    pub reference: String,
}

pub fn run(env: &Env, out: &Printer, args: &PushArgs) -> Outcome {
    let project = super::project::load(env)?.project;
    if let Err(e) = crate::domain::Reference::parse(&args.reference) {
        return Err(CliError::user(format!("`{}` is not a usable reference: {e}", args.reference), None));
    }
    let _writing = super::build::writing(env, &project.name)?;
    let (built, store) = super::build::build_one(env, out, &project, &args.image)?;
    let digest = Puller::new(&project, &store).and_then(|p| p.push(&built.manifest_digest, &args.reference))?;
    if out.json() {
        out.data(json!({ "image": args.image, "reference": args.reference, "digest": digest }));
    } else {
        out.data(format_args!("{}@{digest}", args.reference));
    }
    Ok(ExitStatus::Success)
}

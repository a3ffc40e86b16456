//! `galley push IMAGE REF`: build the image (cached) and push it to a registry, by digest.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::image::pull::Puller;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Name of an image of this project
    pub image: String,
    /// Fully qualified destination (`host[:port]/repository:tag`)
    pub reference: String,
}

pub fn run(settings: &Settings, args: &PushArgs) -> ExitCode {
    let project = match super::build::load(settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(e) = crate::domain::Reference::parse(&args.reference) {
        return super::fail(settings, format!("`{}` is not a usable reference: {e}", args.reference), None);
    }
    let _writing = match super::build::writing(settings, &project.name) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let (built, store) = match super::build::build_one(settings, &project, &args.image) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let pushed = Puller::new(&project, &store).and_then(|p| p.push(&built.manifest_digest, &args.reference));
    match pushed {
        Ok(digest) => {
            match settings.format {
                Format::Json => println!("{}", json!({ "image": args.image, "reference": args.reference, "digest": digest })),
                Format::Text => println!("{}@{digest}", args.reference),
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(settings, e, None),
    }
}

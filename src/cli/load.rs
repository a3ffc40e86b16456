//! `galley load IMAGE`: build the image (cached) and load it into podman by digest, tagged
//! `localhost/galley/<project>/<image>:<short digest>`. Nothing is copied when podman already has
//! the image (podman's image id is the config digest).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::exec::System;
use crate::image;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Name of an image of this project
    pub image: String,
}

pub fn run(settings: &Settings, args: &LoadArgs) -> ExitCode {
    let project = match super::build::load(settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = super::build::host_checks(settings, &project, std::slice::from_ref(&args.image), true) {
        return code;
    }
    let (built, store) = match super::build::build_one(settings, &project, &args.image) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let tag = image::podman::tag(&project.name, &args.image, &built.manifest_digest);
    match image::podman::load(&System, &store, &built, &tag) {
        Ok(copied) => {
            match settings.format {
                Format::Json => println!("{}", json!({ "image": args.image, "tag": tag, "digest": built.manifest_digest, "id": built.config_digest, "copied": copied })),
                Format::Text => println!("{tag}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(settings, e, None),
    }
}


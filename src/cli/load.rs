//! `galley load IMAGE`: build the image (cached) and load it into podman by digest, tagged
//! `localhost/galley/<project>/<image>:<short digest>`. Nothing is copied when podman already has
//! the image (podman's image id is the config digest).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::exec::System;
use crate::image::{self, BuildOptions, Store};
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
    let mut progress = super::build::progress(settings);
    let built = match image::build_with(settings, &project, std::slice::from_ref(&args.image), &BuildOptions::default(), &mut progress) {
        Ok(mut b) => b.remove(&args.image).expect("built what was asked"),
        Err(e) => return super::fail(settings, e, None),
    };
    let store = match Store::open(&settings.home) {
        Ok(s) => s,
        Err(e) => return super::fail(settings, e, None),
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


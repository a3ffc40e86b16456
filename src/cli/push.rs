//! `galley push IMAGE REF`: build the image (cached) and push it to a registry, by digest.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::image::{self, BuildOptions, Store, pull::Puller};
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
    if let Err(e) = crate::reference::Reference::parse(&args.reference) {
        return super::fail(settings, format!("`{}` is not a usable reference: {e}", args.reference), None);
    }
    let mut progress = super::build::progress(settings);
    let built = match image::build_with(settings, &project, std::slice::from_ref(&args.image), &BuildOptions::default(), &mut progress) {
        Ok(mut b) => b.remove(&args.image).expect("built what was asked"),
        Err(e) => return super::fail(settings, e, None),
    };
    let store = match Store::open(&settings.home) {
        Ok(s) => s,
        Err(e) => return super::fail(settings, e, None),
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

//! `galley build`: build the project's images into the store and print their digests.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use crate::image::{self, BuildOptions, BuiltImage, Progress, Store};
use crate::project;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Images to build (all when none is named)
    pub images: Vec<String>,
    /// Never touch the network: bases must already be in the store
    #[arg(long)]
    pub offline: bool,
    /// Build twice from scratch in two temporary stores and name the files that differ
    #[arg(long)]
    pub check_repro: bool,
    /// Refuse a stale galley.lock, build the locked bases, and fail unless every digest matches
    #[arg(long)]
    pub locked: bool,
    /// --locked, and never touch the network
    #[arg(long)]
    pub frozen: bool,
}

/// Load the project or print its diagnostics.
pub(crate) fn load(settings: &Settings) -> Result<crate::model::Project, ExitCode> {
    match project::load(settings, None) {
        Ok(l) if !l.has_errors() => Ok(l.project),
        Ok(l) => Err(super::render::report(settings, &l.diagnostics, true)),
        Err(d) => Err(super::render::report(settings, &d, true)),
    }
}

/// The host checks of `galley doctor` that building `only` (and `loading` it into podman)
/// needs; a failure is printed with doctor's message and help.
pub(crate) fn host_checks(settings: &Settings, project: &crate::model::Project, only: &[String], loading: bool) -> Result<(), ExitCode> {
    let checks = crate::runtime::doctor::for_build(&crate::exec::System, project, only, loading);
    crate::runtime::doctor::first_failure(&checks, None).map_err(|e| super::plan::fail(settings, &e))
}

/// Progress lines on stderr: on a terminal, or with -v.
pub(crate) fn progress(settings: &Settings) -> impl FnMut(Progress<'_>) + use<> {
    let show = settings.verbosity > 0 || (settings.verbosity == 0 && std::io::stderr().is_terminal());
    move |p| {
        if !show {
            return;
        }
        match p {
            Progress::Image(name) => eprintln!("building {name}"),
            Progress::Pull(r) => eprintln!("  base {r}"),
            Progress::Layer { step, cached, .. } => eprintln!("  {step:<10} {}", if cached { "cached" } else { "built" }),
        }
    }
}

pub fn run(settings: &Settings, args: &BuildArgs) -> ExitCode {
    let project = match load(settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = host_checks(settings, &project, &args.images, false) {
        return code;
    }
    let mut opts = BuildOptions { offline: args.offline || args.frozen, ..BuildOptions::default() };
    let lock = if args.locked || args.frozen {
        match super::lock::require_current(settings, &project) {
            Ok(lock) => {
                opts.pinned_bases = lock.pinned_bases();
                Some(lock)
            }
            Err(code) => return code,
        }
    } else {
        None
    };
    if args.check_repro {
        return check_repro(settings, &project, args, &opts);
    }
    let mut progress = progress(settings);
    let built = match image::build_with(settings, &project, &args.images, &opts, &mut progress) {
        Ok(b) => b,
        Err(e) => return super::fail(settings, e, None),
    };
    print_built(settings, &built);
    if let Some(lock) = lock {
        let mismatches = crate::lock::compare(&lock, &built);
        for m in &mismatches {
            eprintln!("error: {m}");
        }
        if !mismatches.is_empty() {
            eprintln!("  help: find the step whose output varies with `galley build --check-repro`");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// Hold GALLEY_HOME shared for writing (gc waits) and record the project, for commands that
/// need what they build to stay until they are done with it.
pub(crate) fn writing(settings: &Settings, name: &str) -> Result<image::home::HomeLock, ExitCode> {
    image::home::writing(&settings.home, &settings.project_dir, name).map_err(|e| super::fail(settings, e, None))
}

/// Build one image (through the cache) and open the store holding it, for `load` and `push`.
pub(crate) fn build_one(
    settings: &Settings,
    project: &crate::model::Project,
    name: &str,
) -> Result<(BuiltImage, Store), ExitCode> {
    let mut progress = progress(settings);
    let built = match image::build_with(settings, project, &[name.to_owned()], &BuildOptions::default(), &mut progress) {
        Ok(mut b) => b.remove(name).expect("built what was asked"),
        Err(e) => return Err(super::fail(settings, e, None)),
    };
    let store = Store::open(&settings.home).map_err(|e| super::fail(settings, e, None))?;
    Ok((built, store))
}

pub(crate) fn image_json(b: &BuiltImage) -> Value {
    json!({
        "digest": b.manifest_digest,
        "config": b.config_digest,
        "ref": b.ref_name,
        "base": b.base,
        "compression": b.compression,
        "layers": b.layers.iter().map(|l| json!({
            "step": l.step,
            "digest": l.digest,
            "diff_id": l.diff_id,
            "size": l.size,
            "media_type": l.media_type,
            "input_key": l.input_key,
            "cached": l.cached,
        })).collect::<Vec<_>>(),
    })
}

fn print_built(settings: &Settings, built: &BTreeMap<String, BuiltImage>) {
    match settings.format {
        Format::Json => {
            let images: serde_json::Map<String, Value> = built.iter().map(|(n, b)| (n.clone(), image_json(b))).collect();
            println!("{}", serde_json::to_string_pretty(&json!({ "images": images })).expect("JSON"));
        }
        Format::Text => {
            for (name, b) in built {
                println!("{name} {}", b.manifest_digest);
            }
        }
    }
}

fn check_repro(settings: &Settings, project: &crate::model::Project, args: &BuildArgs, opts: &BuildOptions) -> ExitCode {
    let mut results = Vec::new();
    let mut homes = Vec::new();
    for _ in 0..2 {
        let home = match tempfile::Builder::new().prefix("galley-repro-").tempdir() {
            Ok(h) => h,
            Err(e) => return super::fail(settings, format!("temp dir: {e}"), None),
        };
        let s = Settings { home: home.path().to_owned(), ..settings.clone() };
        let mut progress = progress(settings);
        match image::build_with(&s, project, &args.images, opts, &mut progress) {
            Ok(b) => results.push(b),
            Err(e) => return super::fail(settings, e, None),
        }
        homes.push(home);
    }
    let stores = match (Store::open(homes[0].path()), Store::open(homes[1].path())) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => return super::fail(settings, e, None),
    };
    let report = image::repro::compare([&stores[0], &stores[1]], [&results[0], &results[1]]);
    match settings.format {
        Format::Json => {
            let images: serde_json::Map<String, Value> = report.iter().map(|r| (r.image.clone(), repro_json(r))).collect();
            println!("{}", serde_json::to_string_pretty(&json!({ "images": images })).expect("JSON"));
        }
        Format::Text => {
            for r in &report {
                if r.reproducible() {
                    println!("{} reproducible {}", r.image, r.digests[0]);
                } else {
                    println!("{} NOT reproducible: {} vs {}", r.image, r.digests[0], r.digests[1]);
                    for d in &r.differences {
                        let (layer, path) = difference_parts(d);
                        println!("  {layer}: {}", path.unwrap_or("(image config)"));
                    }
                }
            }
        }
    }
    if report.iter().all(image::repro::Repro::reproducible) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The layer (its step, or `config`) and the path a difference names.
fn difference_parts(d: &image::repro::Difference) -> (&str, Option<&str>) {
    match d {
        image::repro::Difference::Layer { step, path, .. } => (step, Some(path.as_deref().unwrap_or("(layer encoding)"))),
        image::repro::Difference::Config => ("config", None),
    }
}

fn repro_json(r: &image::repro::Repro) -> Value {
    let differences: Vec<Value> = r
        .differences
        .iter()
        .map(|d| {
            let (layer, path) = difference_parts(d);
            json!({ "layer": layer, "path": path })
        })
        .collect();
    json!({ "reproducible": r.reproducible(), "digests": r.digests, "differences": differences })
}

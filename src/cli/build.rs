//! `galley build`: build the project's images into the store and print their digests.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use clap::Args;
use serde_json::{Value, json};

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::image::{self, BuildOptions, BuiltImage, Progress, Store};
use crate::settings::{Env, Format, Verbosity};

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

/// The host checks of `galley doctor` that building `only` (and `loading` it into podman)
/// needs; a failure is printed with doctor's message and help.
pub(crate) fn host_checks(project: &crate::model::Project, only: &[String], loading: bool) -> Result<(), CliError> {
    let checks = crate::runtime::doctor::for_build(&crate::exec::System, project, only, loading);
    Ok(crate::runtime::doctor::first_failure(&checks, None)?)
}

/// Build options as the flags ask: phase timings with -vvv.
pub(crate) fn options(out: &Printer) -> BuildOptions {
    BuildOptions { timings: out.verbosity.timings(), ..BuildOptions::default() }
}

/// Progress lines on stderr: on a terminal, or with -v.
pub(crate) fn progress(out: &Printer) -> impl FnMut(Progress<'_>) + use<> {
    let show = out.verbosity.verbose() || (out.verbosity == Verbosity::Normal && std::io::stderr().is_terminal());
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

pub fn run(env: &Env, out: &Printer, args: &BuildArgs) -> Outcome {
    let project = super::project::load(env)?.project;
    host_checks(&project, &args.images, false)?;
    let mut opts = BuildOptions { offline: args.offline || args.frozen, ..options(out) };
    let lock = if args.locked || args.frozen { Some(super::lock::require_current(env, &project)?) } else { None };
    if let Some(lock) = &lock {
        opts.pinned_bases = lock.pinned_bases();
        opts.pinned_packages = lock.pinned_packages();
    } else if let Some(on_disk) = crate::lock::Lock::read(&env.project_dir.join(crate::lock::LOCK_FILE))? {
        // Package closures the lock resolved for the same request are installed as pinned, as
        // `galley lock` would; a changed request is resolved again.
        opts.pinned_packages = crate::lock::desired_offline(env, &project, Some(&on_disk))?.pinned_packages();
    }
    if args.check_repro {
        return check_repro(env, out, &project, args, &opts);
    }
    let built = image::build_with(env, &project, &args.images, &opts, &mut progress(out))?;
    print_built(out, &built);
    if let Some(lock) = lock {
        let mismatches = crate::lock::compare(&lock, &built);
        for m in &mismatches {
            eprintln!("error: {m}");
        }
        if !mismatches.is_empty() {
            eprintln!("  help: find the step whose output varies with `galley build --check-repro`");
            return Ok(ExitStatus::No);
        }
    }
    Ok(ExitStatus::Success)
}

/// Hold GALLEY_HOME shared for writing (gc waits) and record the project, for commands that
/// need what they build to stay until they are done with it.
pub(crate) fn writing(env: &Env, name: &str) -> Result<image::home::HomeLock, CliError> {
    Ok(image::home::writing(&env.home, &env.project_dir, name)?)
}

/// Build one image (through the cache) and open the store holding it, for `load` and `push`.
pub(crate) fn build_one(
    env: &Env,
    out: &Printer,
    project: &crate::model::Project,
    name: &str,
) -> Result<(BuiltImage, Store), CliError> {
    let mut built = image::build_with(env, project, &[name.to_owned()], &options(out), &mut progress(out))?;
    let built = built.remove(name).expect("built what was asked");
    Ok((built, Store::open(&env.home)?))
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

fn print_built(out: &Printer, built: &BTreeMap<String, BuiltImage>) {
    match out.format {
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

fn check_repro(env: &Env, out: &Printer, project: &crate::model::Project, args: &BuildArgs, opts: &BuildOptions) -> Outcome {
    let mut results = Vec::new();
    let mut homes = Vec::new();
    for _ in 0..2 {
        let home = tempfile::Builder::new()
            .prefix("galley-repro-")
            .tempdir()
            .map_err(|e| CliError::user(format!("temp dir: {e}"), None))?;
        let s = Env { home: home.path().to_owned(), ..env.clone() };
        results.push(image::build_with(&s, project, &args.images, opts, &mut progress(out))?);
        homes.push(home);
    }
    let stores = [Store::open(homes[0].path())?, Store::open(homes[1].path())?];
    let report = image::repro::compare([&stores[0], &stores[1]], [&results[0], &results[1]]);
    match out.format {
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
    Ok(ExitStatus::no_unless(report.iter().all(image::repro::Repro::reproducible)))
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

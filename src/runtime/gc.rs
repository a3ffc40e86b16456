//! `galley gc` over one `GALLEY_HOME`: its roots are the locks of every recorded project whose
//! directory still exists and the images of every galley container podman has, running or not;
//! the image layer ([`crate::image::gc`]) marks and sweeps.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::naming::LABEL_PROJECT;
use crate::exec::{ExecError, Runner};
use crate::image::gc::{self, GcError, Report, Roots};
use crate::image::{Store, home};
use crate::lock::{self, Lock};

/// Collect the garbage of `galley_home` (with `dry_run`, only report it). A real run takes the
/// home exclusive and fails at once with [`GcError::Busy`] while a writer holds it.
pub fn run(galley_home: &Path, runner: &dyn Runner, dry_run: bool) -> Result<Report, GcError> {
    let _held = if dry_run {
        home::shared(galley_home)?
    } else {
        home::exclusive(galley_home)?.ok_or_else(|| GcError::Busy { home: galley_home.to_owned() })?
    };
    let index = Store::open(galley_home)?.index()?;
    let refs_of = |project: &str| {
        let prefix = format!("{project}/");
        index.manifests.iter().filter(move |d| d.ref_name().is_some_and(|r| r.starts_with(&prefix))).map(|d| d.digest)
    };
    let mut roots = Roots::default();
    let mut projects: BTreeSet<String> =
        index.manifests.iter().filter_map(|d| d.ref_name()?.split_once('/').map(|(p, _)| p.to_owned())).collect();
    let (mut dropped, mut warnings) = (Vec::new(), Vec::new());
    for record in home::recorded(galley_home)? {
        projects.insert(record.name.clone());
        let dir = Path::new(&record.dir);
        if !dir.is_dir() {
            dropped.push(record.dir);
            continue;
        }
        match Lock::read(&dir.join(lock::LOCK_FILE)) {
            Ok(Some(l)) => {
                projects.insert(l.project.name.clone());
                add_lock(&mut roots, &l);
            }
            Ok(None) => {}
            Err(e) => {
                warnings.push(format!("{e}: keeping every image of project `{}`", record.name));
                roots.manifests.extend(refs_of(&record.name));
            }
        }
    }
    let podman = container_images(runner)?.map(|images| {
        roots.containers = images;
        runner
    });
    let mut report = gc::collect(galley_home, &roots, &projects, podman, dry_run)?;
    if !dry_run {
        for dir in &dropped {
            home::forget(galley_home, dir)?;
        }
    }
    report.dropped_projects = dropped;
    report.warnings.extend(warnings);
    Ok(report)
}

/// What a lock keeps: each image's base manifest, and its built manifest, config and layers.
pub fn add_lock(roots: &mut Roots, lock: &Lock) {
    for image in lock.images.values() {
        if let Some(digest) = image.base.as_ref().and_then(|b| b.digest) {
            roots.manifests.insert(digest);
        }
        if let Some(out) = &image.output {
            roots.manifests.insert(out.manifest);
            roots.blobs.insert(out.config);
            roots.blobs.extend(out.layers.iter().map(|l| l.digest));
        }
    }
}

/// (image id, image name) of every container with a galley project label, running or not;
/// `None` when podman is not installed. Output that does not parse is an error: gc never guesses
/// that nothing runs.
pub fn container_images(runner: &dyn Runner) -> Result<Option<Vec<(String, String)>>, GcError> {
    let filter = format!("label={LABEL_PROJECT}");
    let out = match runner.check(&crate::exec::podman().args(["ps", "--all", "--format", "json", "--filter", filter.as_str()])) {
        Ok(out) => out,
        Err(ExecError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(GcError::Other(format!("cannot list galley's containers: {e}"))),
    };
    let text = out.stdout_str();
    let items: Vec<Value> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&text).map_err(|e| GcError::Other(format!("cannot parse `podman ps`: {e}")))?
    };
    let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Ok(Some(items.iter().map(|c| (field(&c["ImageID"]), field(&c["Image"]))).filter(|(id, _)| !id.is_empty()).collect()))
}

//! RUN steps in a buildah container, through [`crate::exec`].
//!
//! The parent image (base + galley's earlier layers) is handed to buildah as a throw-away OCI
//! layout; the step runs with `--cap-drop all`, `--network none` unless the step asks for network,
//! the project directory mounted read-only at /galley/src, no runtime socket, and the OCI runtime
//! the settings detected (`GALLEY_OCI_RUNTIME`, else runc, else buildah's default). buildah runs rootless when galley runs as a
//! normal user. buildah's diff layer (the step's changes against the parent rootfs, deletions as
//! OCI whiteouts) is then read back and re-packed by galley's own writer: sorted, mtimes clamped,
//! so the layer digest depends only on the bytes the step produced.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::config::{self, Descriptor, Index, Manifest};
use super::layer::{self, Entry, Kind};
use super::store::Store;
use super::ImageError;
use crate::domain::Digest;
use crate::exec::{Cmd, Runner, System};
use crate::model::RunStep;
use crate::settings::Env;

/// Time limits of the buildah calls around a RUN step (the step itself has
/// [`Env::run_timeout`]): making the container from the parent layout and committing it copy
/// whole images; removing them is quick.
pub const FROM_TIMEOUT: Duration = Duration::from_secs(900);
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(900);
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the project is mounted inside RUN steps.
pub const SRC_MOUNT: &str = "/galley/src";

/// The buildah `run` argv for `step` in container `name` (without the program).
pub fn run_args(name: &str, step: &RunStep, project_dir: &Path, runtime: Option<&str>) -> Vec<String> {
    let mut a = vec!["run".to_owned()];
    if let Some(runtime) = runtime {
        a.extend(["--runtime".into(), runtime.into()]);
    }
    a.extend([
        "--cap-drop".into(),
        "all".into(),
        "--volume".into(),
        format!("{}:{SRC_MOUNT}:ro", project_dir.display()),
    ]);
    if !step.network {
        a.push("--network".into());
        a.push("none".into());
    }
    a.push(name.into());
    a.push("--".into());
    a.extend(step.command.iter().cloned());
    a
}

fn run_err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Run(e.to_string())
}

/// Run `step` on top of the parent image and return its changes as layer entries.
pub fn run_step(
    settings: &Env,
    store: &Store,
    parent_layers: &[Descriptor],
    parent_config: &Value,
    step: &RunStep,
    epoch: u64,
) -> Result<Vec<Entry>, ImageError> {
    let runner: &dyn Runner = &System;
    if !crate::exec::available("buildah") {
        return Err(ImageError::Run("RUN steps need buildah, which is not on PATH".into()));
    }
    let runtime = settings.oci_runtime.usable().map_err(|(message, help)| run_err(format!("{message} (help: {help})")))?;
    let work = work_dir(&settings.home.join("tmp"))?;
    let parent_dir = work.path().join("parent");
    write_layout(store, &parent_dir, parent_layers, parent_config)?;
    let project_dir = fs::canonicalize(&settings.project_dir).map_err(|e| run_err(format!("{}: {e}", settings.project_dir.display())))?;
    let name = format!("galley-run-{}", Digest::of(work.path().as_os_str().as_encoded_bytes()).short());
    let buildah = |args: Vec<String>| Cmd::new("buildah").args(args);
    check_storage_race(runner, &buildah(vec!["from".into(), "--quiet".into(), "--name".into(), name.clone(), format!("oci:{}:parent", parent_dir.display())]).timeout(FROM_TIMEOUT))
        .map_err(run_err)?;
    // buildah names the image it copied from the layout after the layout's path.
    let image_name = format!("localhost{}:latest", parent_dir.display());
    let cleanup = Cleanup { runner, name: name.clone(), image_name };
    let run = buildah(run_args(&name, step, &project_dir, runtime)).timeout(settings.run_timeout).stdout_tail();
    let out = runner.run(&run).map_err(run_err)?;
    if out.timed_out {
        return Err(ImageError::Run(format!(
            "`{}` was stopped after its time limit of {}\nhelp: make the step finish sooner, or raise {}",
            run.display(),
            crate::exec::seconds(settings.run_timeout),
            crate::env_vars::GALLEY_RUN_TIMEOUT_SECS
        )));
    }
    if !out.success() {
        return Err(ImageError::Run(format!(
            "`{}` exited with {}:\n{}{}",
            step.command.join(" "),
            out.code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()),
            crate::exec::tail(&out.stdout_str(), 10),
            crate::exec::tail(&out.stderr_str(), 20)
        )));
    }
    let out_dir = work.path().join("out");
    runner
        .check(&buildah(vec![
            "commit".into(),
            "--quiet".into(),
            "--format".into(),
            "oci".into(),
            "--timestamp".into(),
            epoch.to_string(),
            name.clone(),
            format!("oci:{}:out", out_dir.display()),
        ]).timeout(COMMIT_TIMEOUT))
        .map_err(run_err)?;
    drop(cleanup);
    let spill = tempfile::tempfile_in(settings.home.join("tmp")).map_err(|e| run_err(format!("spill file: {e}")))?;
    repack_last_layer(&out_dir, spill, epoch)
}

/// A fresh directory whose path buildah accepts: it derives an image name from an `oci:` path,
/// so every component must be lower-case letters, digits, '-' or '_' (no leading dot). Under
/// `tmp` (galley's, on the store's file system, so blobs can be hard-linked) when that path
/// qualifies, else under the system temp dir, else /tmp. Removed on drop.
pub fn work_dir(tmp: &Path) -> Result<tempfile::TempDir, ImageError> {
    use rand::Rng;
    let ok = |p: &Path| {
        p.is_absolute()
            && p.to_string_lossy().split('/').filter(|c| !c.is_empty()).all(|c| {
                !c.starts_with(['.', '-', '_']) && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
            })
    };
    let _ = fs::create_dir_all(tmp);
    let candidates = [fs::canonicalize(tmp).ok(), fs::canonicalize(std::env::temp_dir()).ok(), Some(PathBuf::from("/tmp"))];
    let dir = candidates.into_iter().flatten().find(|p| ok(p)).ok_or_else(|| run_err("no temp directory with a plain lower-case path"))?;
    tempfile::Builder::new()
        .prefix("galley-run-")
        .rand_bytes(0)
        .suffix(&format!("{:016x}", rand::thread_rng().r#gen::<u64>()))
        .tempdir_in(&dir)
        .map_err(|e| run_err(format!("temp dir: {e}")))
}

/// How many times a copy into buildah's storage is tried.
const STORAGE_TRIES: usize = 3;

/// Run `cmd`, a copy of an image into buildah's storage (`buildah from` or `pull` of an OCI
/// layout), requiring success, and try again when it lost a race with another build's clean-up:
/// builds on the same base share its layers in the storage, and one that removes its copy of the
/// base as another is adding the same layers leaves the second with `layer not known`.
pub fn check_storage_race(runner: &dyn Runner, cmd: &Cmd) -> Result<crate::exec::Output, crate::exec::ExecError> {
    let mut tries = 1;
    loop {
        match runner.check(cmd) {
            Err(crate::exec::ExecError::Failed { stderr, .. }) if tries < STORAGE_TRIES && stderr.contains("layer not known") => tries += 1,
            other => return other,
        }
    }
}

struct Cleanup<'a> {
    runner: &'a dyn Runner,
    name: String,
    image_name: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.runner.run(&Cmd::new("buildah").args(["rm", self.name.as_str()]).timeout(CLEANUP_TIMEOUT));
        // The parent image buildah copied into its storage.
        // Untags it, and removes it once no other name or container uses it.
        let _ = self.runner.run(&Cmd::new("buildah").args(["rmi", self.image_name.as_str()]).timeout(CLEANUP_TIMEOUT));
    }
}

/// An OCI layout at `dir` holding the parent image as ref `parent`, its blobs hard-linked (or
/// copied) from the store.
pub fn write_layout(store: &Store, dir: &Path, layers: &[Descriptor], config: &Value) -> Result<(), ImageError> {
    let tmp = dir.join("tmp");
    let layout = Store::open_at(dir, &tmp)?;
    link_blobs(store, &layout, layers)?;
    let cfg = crate::canonical::to_vec(config);
    let cfg_digest = layout.put(&cfg)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(config::MEDIA_MANIFEST.into()),
        config: Descriptor::new(config::MEDIA_CONFIG, cfg_digest, cfg.len() as u64),
        layers: layers.to_vec(),
        annotations: None,
    };
    let desc = layout.put_manifest(&manifest)?;
    layout.set_ref("parent", desc)?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(())
}

fn link_blobs(store: &Store, layout: &Store, blobs: &[Descriptor]) -> Result<(), ImageError> {
    for d in blobs {
        let src = store.blob_path(&d.digest);
        let dst = layout.blob_path(&d.digest);
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(|e| run_err(format!("{}: {e}", dst.display())))?;
        }
    }
    Ok(())
}

/// An OCI layout at `dir` holding the stored image `manifest` as ref `name` (blobs hard-linked or
/// copied from the store).
pub fn export_layout(store: &Store, dir: &Path, manifest: &Descriptor, name: &str) -> Result<(), ImageError> {
    let tmp = dir.join("tmp");
    let layout = Store::open_at(dir, &tmp)?;
    let m = store.manifest(&manifest.digest)?;
    let mut blobs = vec![manifest.clone(), m.config.clone()];
    blobs.extend(m.layers);
    link_blobs(store, &layout, &blobs)?;
    layout.set_ref(name, manifest.clone())?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(())
}

/// Read the top layer of the single image in the OCI layout `dir` and turn it into entries,
/// spilling file contents into `spill`.
pub fn repack_last_layer(dir: &Path, spill: fs::File, epoch: u64) -> Result<Vec<Entry>, ImageError> {
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).map_err(|e| run_err(format!("buildah's output: {e}")))?)
        .map_err(|e| run_err(format!("buildah's index.json: {e}")))?;
    let m = index.manifests.first().ok_or_else(|| run_err("buildah wrote no image"))?;
    let blob = |digest: &Digest| dir.join("blobs/sha256").join(digest.hex());
    let manifest: Manifest = serde_json::from_slice(&fs::read(blob(&m.digest)).map_err(run_err)?).map_err(run_err)?;
    let top = manifest.layers.last().ok_or_else(|| run_err("buildah's image has no layers"))?;
    let f = fs::File::open(blob(&top.digest)).map_err(run_err)?;
    let r = layer::decompressing_reader(&top.media_type, f).map_err(run_err)?;
    repack(r, spill, epoch)
}

/// Files a container runtime creates as (empty) mount points, never part of a step's output.
const RUNTIME_FILES: &[&str] = &["run/.containerenv", "etc/hosts", "etc/resolv.conf", "etc/hostname"];
/// Directories a runtime creates or touches for its mounts. They appear in a step's diff or not
/// depending on the runtime and on rootless mode, so they are kept only when the step put
/// something inside them.
const RUNTIME_DIRS: &[&str] = &["dev", "proc", "sys", "run", "etc", "tmp", "galley", "galley/src"];

/// Turn a tar stream into sorted-later entries with clamped mtimes.
pub fn repack(r: impl Read, mut spill: fs::File, epoch: u64) -> Result<Vec<Entry>, ImageError> {
    let mut ar = tar::Archive::new(r);
    let mut entries = Vec::new();
    let mut offset = 0u64;
    let mut pending: Vec<(usize, u64, u64)> = Vec::new();
    for e in ar.entries().map_err(run_err)? {
        let mut e = e.map_err(run_err)?;
        let path = clean(&e.path().map_err(run_err)?.to_string_lossy());
        if path.is_empty() {
            continue;
        }
        let h = e.header();
        let mode = h.mode().map_err(run_err)? & 0o7777;
        let uid = h.uid().map_err(run_err)? as u32;
        let gid = h.gid().map_err(run_err)? as u32;
        let mtime = h.mtime().map_err(run_err)?.min(epoch);
        let ty = h.entry_type();
        let mut spilled = None;
        let kind = if ty.is_dir() {
            Kind::Dir
        } else if ty.is_file() {
            let start = offset;
            let n = std::io::copy(&mut e, &mut spill).map_err(run_err)?;
            offset += n;
            spilled = Some((start, n));
            Kind::Data(Arc::new(Vec::new()))
        } else if ty.is_symlink() {
            Kind::Symlink(e.link_name().map_err(run_err)?.map(|l| l.to_string_lossy().into_owned()).unwrap_or_default())
        } else if ty.is_hard_link() {
            Kind::Hardlink(clean(&e.link_name().map_err(run_err)?.map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()))
        } else {
            return Err(run_err(format!("the step made {path}, a {ty:?}, which galley layers cannot hold")));
        };
        // Mount points the runtime leaves behind: empty files (directories below).
        let mount_point = RUNTIME_FILES.contains(&path.as_str()) && matches!((&kind, spilled), (Kind::Data(_), Some((_, 0))));
        if mount_point {
            continue;
        }
        if let Some((start, n)) = spilled {
            pending.push((entries.len(), start, n));
        }
        entries.push(Entry { path, kind, mode, uid, gid, mtime });
    }
    spill.flush().map_err(run_err)?;
    spill.rewind().map_err(run_err)?;
    let spill = Arc::new(spill);
    for (i, start, n) in pending {
        entries[i].kind = Kind::Spilled { file: spill.clone(), offset: start, size: n };
    }
    let has_children = |dir: &str, entries: &[Entry]| {
        let prefix = format!("{dir}/");
        entries.iter().any(|e| e.path.starts_with(&prefix) && !(RUNTIME_FILES.contains(&e.path.as_str())))
    };
    let keep: Vec<bool> = entries
        .iter()
        .map(|e| !(matches!(e.kind, Kind::Dir) && RUNTIME_DIRS.contains(&e.path.as_str()) && !has_children(&e.path, &entries)))
        .collect();
    Ok(entries.into_iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e).collect())
}

fn clean(p: &str) -> String {
    p.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_drop_capabilities_and_network() {
        let step = RunStep { command: vec!["/bin/sh".into(), "-c".into(), "true".into()], network: false };
        let a = run_args("c", &step, Path::new("/p"), Some("runc")).join(" ");
        assert_eq!(a, "run --runtime runc --cap-drop all --volume /p:/galley/src:ro --network none c -- /bin/sh -c true");
        let step = RunStep { network: true, ..step };
        assert!(!run_args("c", &step, Path::new("/p"), Some("runc")).contains(&"none".to_string()));
    }

    #[test]
    fn repack_clamps_and_drops_mount_points() {
        fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(mtime);
            h.set_entry_type(kind);
            h
        }
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [("out/x", &b"made"[..]), ("etc/hosts", b"")] {
            let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644, 1_700_000_000);
            b.append_data(&mut h, path, data).unwrap();
        }
        let mut h = header(tar::EntryType::Directory, 0, 0o755, 5);
        b.append_data(&mut h, "run/", std::io::empty()).unwrap();
        let mut h = header(tar::EntryType::Regular, 0, 0o644, 1_700_000_000);
        b.append_data(&mut h, "etc/.wh.gone", std::io::empty()).unwrap();
        let bytes = b.into_inner().unwrap();
        let entries = repack(bytes.as_slice(), tempfile::tempfile().unwrap(), 0).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.mtime, e.size())).collect();
        assert_eq!(paths, vec![("out/x", 0, 4), ("etc/.wh.gone", 0, 0)]);
    }
}

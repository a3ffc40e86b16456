//! Containerfile builds end to end with real buildah, podman and a loopback registry: the same
//! digest from two machines' worth of differences, the image run and verified, confinement of the
//! steps (the project unwritable through every mount form, no network, no runtime socket), build
//! secrets kept out of every output, bases pinned by the lock, and located errors.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::registry::Registry;
use support::runner::TestProject;

fn galley(home: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_galley"));
    c.env("GALLEY_HOME", home).env("NO_COLOR", "1").env_remove("SOURCE_DATE_EPOCH").arg("-C").arg(dir).args(args);
    c.stdin(std::process::Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("galley runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(c: Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "galley failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_json(home: &Path, dir: &Path) -> Value {
    serde_json::from_str(&ok(galley(home, dir, &["--format", "json", "build"]))).expect("build prints JSON")
}

/// buildah, podman, the registry and busybox, or a skip (a failure under
/// GALLEY_TEST_REQUIRE_RUNTIME=1).
fn tools() -> bool {
    support::require_tools(&["buildah", "podman", "/bin/busybox", "/usr/bin/docker-registry"])
}

/// A loopback registry holding galley's busybox base as `<host>/galley/busybox:1`.
fn registry_with_busybox() -> (Registry, String) {
    let reg = support::require_registry().expect("docker-registry");
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rootfs/bin")).unwrap();
    fs::copy("/bin/busybox", dir.path().join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.path().join("rootfs/bin/sh")).unwrap();
    fs::write(
        dir.path().join("galley.ncl"),
        format!("{{\n  name = \"cfbase\",\n  {}\n  images.base = {{ files = [{{ src = \"rootfs\", dst = \"/\" }}] }},\n}}\n", reg.config_line()),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    ok(galley(home.path(), dir.path(), &["build", "base"]));
    ok(galley(home.path(), dir.path(), &["push", "base", &format!("{host}/galley/busybox:1")]));
    (reg, host)
}

/// A multi-stage Containerfile on the busybox base: the first stage makes files from the
/// context, the second copies them.
const MULTI_STAGE: &str = "ARG REG\nFROM ${REG}/galley/busybox:1 AS build\nCOPY app/ /src/\nRUN mkdir -p /src/out && cat /src/a.txt /src/sub/b.txt > /src/out/joined.txt && cp /src/run.sh /src/out/run.sh\nFROM ${REG}/galley/busybox:1\nCOPY --from=build /src/out/ /srv/\nUSER 1000:1000\nCMD [\"/bin/busybox\", \"sleep\", \"1000000\"]\n";

/// Write the context files in `order`, with `mode` bits for plain files and mtime `mtime`.
fn write_context(dir: &Path, reverse: bool, mode: u32, mtime: SystemTime) {
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("app/a.txt", b"alpha\n", mode),
        ("app/sub/b.txt", b"beta\n", mode),
        ("app/run.sh", b"#!/bin/sh\necho run\n", mode | 0o111),
        ("notes/ignored.txt", b"not in the context\n", mode),
    ];
    if reverse {
        files.reverse();
    }
    for (p, bytes, m) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    }
    fs::write(dir.join(".containerignore"), "notes\n").unwrap();
    fs::write(dir.join("Containerfile"), MULTI_STAGE).unwrap();
}

fn config(name: &str, host: &str, extra: &str) -> String {
    format!(
        "{{\n  name = \"{name}\",\n  registries.\"{host}\" = {{ insecure = true, allow_private = true }},\n  images.app = {{\n    containerfile = {{ path = \"Containerfile\", build_args = {{ REG = \"{host}\" }} }},\n    labels = {{ \"io.galley.test.owner\" = \"{name}\" }},\n  }},\n{extra}\n}}\n"
    )
}

#[test]
fn a_multi_stage_containerfile_gives_one_digest_in_two_homes_and_runs_and_verifies() {
    if !tools() {
        return;
    }
    let (_reg, host) = registry_with_busybox();
    let project = TestProject::new("cfrepro");
    let sandbox = "  sandboxes.web = { image = \"app\", user = \"1000:1000\", command = [\"/bin/busybox\", \"sleep\", \"1000000\"] },";
    write_context(project.dir.path(), false, 0o644, SystemTime::now() - Duration::from_secs(86_400 * 400));
    fs::write(project.dir.path().join("galley.ncl"), config(&project.name, &host, sandbox)).unwrap();
    let first = build_json(project.home.path(), project.dir.path());

    // Another machine: another home, umask 077 (files 0600), another TZ, other mtimes, files
    // made in the opposite order.
    let other = tempfile::tempdir().unwrap();
    write_context(other.path(), true, 0o600, SystemTime::now());
    fs::write(other.path().join("galley.ncl"), config(&project.name, &host, sandbox)).unwrap();
    let home2 = tempfile::tempdir().unwrap();
    let mut c = galley(home2.path(), other.path(), &["--format", "json", "build"]);
    c.env("TZ", "Asia/Kolkata");
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let second: Value = serde_json::from_str(&ok(c)).unwrap();
    let digest = first["images"]["app"]["digest"].as_str().expect("a digest").to_owned();
    assert_eq!(second["images"]["app"]["digest"], digest.as_str(), "{first}\n{second}");

    // It runs in podman as a sandbox, and verify passes.
    project.galley_code(&["lock"], 0);
    project.galley_code(&["build", "--locked"], 0);
    let out = project.galley_code(&["apply", "--locked", "--auto-approve"], 0);
    let container = project.container("default", "web");
    let (ok_, joined) = project.exec("default", "web", "cat /srv/joined.txt && id -u && ls /srv");
    assert!(ok_, "{joined}\n{out}");
    assert!(joined.starts_with("alpha\nbeta\n1000\n"), "{joined}");
    assert!(!joined.contains("ignored"), "{joined}");
    let verified = project.galley(&["verify"]);
    assert!(verified.status.success(), "verify: {}", text(&verified));
    let inspect = support::runner::podman_ok(&["inspect", "--format", "{{.Config.User}}", &container]);
    assert_eq!(inspect.trim(), "1000:1000");
}

/// The hash of every file under `dir` (path, mode, content), to prove it did not change.
fn tree_hash(dir: &Path) -> String {
    let mut items = BTreeMap::new();
    for e in walk(dir) {
        let m = fs::symlink_metadata(&e).unwrap();
        let content = if m.is_file() { fs::read(&e).unwrap() } else { Vec::new() };
        items.insert(e.strip_prefix(dir).unwrap().display().to_string(), (m.permissions().mode(), content));
    }
    format!("{items:?}")
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

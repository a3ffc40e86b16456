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

/// One image per attack, each with its own Containerfile, in a project whose tree is hashed
/// before and after.
fn attack_project(host: &str, images: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_context(dir.path(), false, 0o644, SystemTime::now() - Duration::from_secs(3600));
    let mut decl = String::new();
    for (name, file) in images {
        fs::write(dir.path().join(format!("{name}.Containerfile")), file).unwrap();
        decl.push_str(&format!(
            "  images.{name}.containerfile = {{ path = \"{name}.Containerfile\", build_args = {{ REG = \"{host}\" }} }},\n"
        ));
    }
    fs::write(
        dir.path().join("galley.ncl"),
        format!("{{\n  name = \"cfattack\",\n  registries.\"{host}\" = {{ insecure = true, allow_private = true }},\n{decl}}}\n"),
    )
    .unwrap();
    dir
}

/// Attacks on the worktree, the network and the runtime socket from a build's steps: each
/// fails, and the project is byte-identical afterwards. A `RUN --mount=type=bind,rw` write lands
/// in the build's snapshot of the context, never in the project.
#[test]
fn steps_cannot_write_the_worktree_reach_the_network_or_a_runtime_socket() {
    if !tools() {
        return;
    }
    let (_reg, host) = registry_with_busybox();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("podman.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let from = "ARG REG\nFROM ${REG}/galley/busybox:1\n";
    let dir_probe = tempfile::tempdir().unwrap();
    let project_path = dir_probe.path().display().to_string();
    let failing: Vec<(&str, String)> = vec![
        // The project's own path, from a plain RUN: the build never sees it.
        ("plainrun", format!("{from}RUN echo pwned > {project_path}/app/a.txt\n")),
        // The default bind mount of the context is read-only.
        ("bindro", format!("{from}RUN --mount=type=bind,target=/ctx echo pwned > /ctx/app/a.txt\n")),
        ("network", format!("{from}RUN echo hi | nc -w 2 127.0.0.1 {port}\n")),
        ("socket", format!("{from}RUN test -S {}\n", socket.display())),
        ("podmansocket", format!("{from}RUN test -S /run/podman/podman.sock\n")),
        ("socketmount", format!("{from}RUN --mount=type=bind,source={},target=/s test -S /s\n", socket.display())),
    ];
    let mut images = failing.clone();
    images.push(("bindrw", format!("{from}RUN --mount=type=bind,rw,target=/ctx sh -c 'echo pwned > /ctx/app/a.txt && echo new > /ctx/new.txt'\n")));
    let project = attack_project(&host, &images);
    // The plain RUN aims at this very project's path.
    let plainrun = fs::read_to_string(project.path().join("plainrun.Containerfile")).unwrap().replace(&project_path, &project.path().display().to_string());
    fs::write(project.path().join("plainrun.Containerfile"), plainrun).unwrap();
    let before = tree_hash(project.path());
    let home = tempfile::tempdir().unwrap();
    for (name, _) in &failing {
        let out = run(galley(home.path(), project.path(), &["build", name]));
        assert!(!out.status.success(), "attack `{name}` was not stopped: {}", text(&out));
        assert_eq!(tree_hash(project.path()), before, "attack `{name}` changed the worktree");
    }
    assert!(listener.accept().is_err(), "a step reached the loopback listener");
    // The rw bind mount writes to the snapshot: the build goes on, the project does not change.
    let _ = run(galley(home.path(), project.path(), &["build", "bindrw"]));
    assert_eq!(tree_hash(project.path()), before, "a rw bind mount changed the worktree");
    assert!(!project.path().join("new.txt").exists());
    assert!(listener.accept().is_err(), "a step reached the loopback listener");
}

/// A build secret is readable in its step and in no layer, store blob, lock or output.
#[test]
fn a_build_secret_is_read_in_its_step_and_found_nowhere_after() {
    if !tools() {
        return;
    }
    let (_reg, host) = registry_with_busybox();
    let secret = format!("cf-secret-{}-93b1c7e2d4", std::process::id());
    let project = TestProject::new("cfsecret");
    let dir = project.dir.path();
    write_context(dir, false, 0o644, SystemTime::now() - Duration::from_secs(3600));
    fs::write(
        dir.join("Containerfile"),
        "ARG REG\nFROM ${REG}/galley/busybox:1\nCOPY app/ /srv/\nRUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -c1-64 > /srv/token.sha\n",
    )
    .unwrap();
    let cfg = config(&project.name, &host, "").replace(
        "build_args = {",
        "secrets = { token = { env = \"CF_TEST_TOKEN\" } }, build_args = {",
    );
    fs::write(dir.join("galley.ncl"), cfg).unwrap();
    let mut transcript = String::new();
    for args in [&["-vvv", "lock"][..], &["-vvv", "build", "--locked"][..], &["-vvv", "load", "app"][..]] {
        let mut c = galley(project.home.path(), dir, args);
        c.env("CF_TEST_TOKEN", &secret);
        let out = run(c);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        transcript.push_str(&text(&out));
    }
    assert!(!transcript.contains(&secret), "galley printed the secret: {transcript}");
    let lock = fs::read_to_string(dir.join("galley.lock")).unwrap();
    assert!(!lock.contains(&secret));
    // The step read it: the image holds its hash.
    let store = galley::image::Store::open(project.home.path()).unwrap();
    let index = store.index().unwrap();
    let desc = index.manifests.iter().find(|m| m.ref_name() == Some(&format!("{}/app", project.name))).expect("the image's ref").clone();
    let manifest = store.manifest(&desc.digest).unwrap();
    let found = galley::image::read_from_layers(&store, &manifest.layers, &["srv/token.sha"]).unwrap();
    let want = galley::domain::Digest::of(secret.as_bytes()).hex();
    assert_eq!(String::from_utf8_lossy(&found["srv/token.sha"]).trim(), want);
    // No blob of the store holds it, compressed or not.
    for blob in walk(&project.home.path().join("store")) {
        if !blob.is_file() {
            continue;
        }
        let bytes = fs::read(&blob).unwrap();
        let mut plain = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain);
        for b in [&bytes, &plain] {
            assert!(!b.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds the secret", blob.display());
        }
    }
    // Nor does podman's copy of the image, layers uncompressed.
    let tag = galley::image::podman::tag(&project.name, "app", &desc.digest);
    let saved = tempfile::tempdir().unwrap();
    let out_dir = saved.path().join("img");
    support::runner::podman_ok(&["image", "save", "--format", "oci-dir", "--uncompressed", "-o", &out_dir.display().to_string(), &tag]);
    for f in walk(&out_dir) {
        if f.is_file() {
            let bytes = fs::read(&f).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "podman's {} holds the secret", f.display());
        }
    }
    let _ = support::runner::podman(&["rmi", &tag]);
}

/// The FROM tag is pinned in the lock; the Containerfile and each build argument are lock
/// inputs; `build --locked` reproduces the lock in a fresh home.
#[test]
fn from_tags_are_pinned_and_the_file_and_build_args_are_lock_inputs() {
    if !tools() {
        return;
    }
    let (_reg, host) = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    write_context(dir.path(), false, 0o644, SystemTime::now() - Duration::from_secs(3600));
    let cfg = config("cflock", &host, "");
    fs::write(dir.path().join("galley.ncl"), &cfg).unwrap();
    let home = tempfile::tempdir().unwrap();
    ok(galley(home.path(), dir.path(), &["lock"]));
    let lock: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("galley.lock")).unwrap()).unwrap();
    let from = &lock["images"]["app"]["from"][0];
    assert_eq!(from["reference"], format!("{host}/galley/busybox:1"));
    assert!(from["digest"].as_str().unwrap().starts_with("sha256:"), "{lock}");
    assert!(lock["images"]["app"]["inputs"]["containerfile:Containerfile"].is_string(), "{lock}");
    assert!(lock["images"]["app"]["inputs"]["build_arg:REG"].is_string(), "{lock}");
    ok(galley(home.path(), dir.path(), &["lock", "--check"]));

    // The Containerfile edited.
    fs::write(dir.path().join("Containerfile"), format!("{MULTI_STAGE}LABEL edited=yes\n")).unwrap();
    let out = run(galley(home.path(), dir.path(), &["lock", "--check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("containerfile:Containerfile"), "{}", text(&out));
    fs::write(dir.path().join("Containerfile"), MULTI_STAGE).unwrap();
    ok(galley(home.path(), dir.path(), &["lock", "--check"]));

    // A build argument changed.
    fs::write(dir.path().join("galley.ncl"), cfg.replace("build_args = {", "build_args = { EXTRA = \"1\",")).unwrap();
    let out = run(galley(home.path(), dir.path(), &["lock", "--check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("build_arg:EXTRA"), "{}", text(&out));
    fs::write(dir.path().join("galley.ncl"), &cfg).unwrap();

    // A file of the context changed.
    fs::write(dir.path().join("app/a.txt"), "changed\n").unwrap();
    let out = run(galley(home.path(), dir.path(), &["lock", "--check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("context:."), "{}", text(&out));
    fs::write(dir.path().join("app/a.txt"), "alpha\n").unwrap();

    // A fresh home builds the locked base and proves every digest.
    let fresh = tempfile::tempdir().unwrap();
    ok(galley(fresh.path(), dir.path(), &["build", "--locked"]));
    // An unchanged rebuild runs no buildah: every layer is cached.
    let again = build_json(fresh.path(), dir.path());
    assert!(again["images"]["app"]["layers"].as_array().unwrap().iter().all(|l| l["cached"] == true), "{again}");
}

/// The attack: a pull request's build context larger than the disk galley copies it to (here a
/// sparse file of 600 MiB, above what goes to memory, on a home of 64 MiB) filled that disk
/// while it was copied. The copy is refused before it starts, saying why, and leaves nothing.
#[test]
fn a_context_larger_than_the_free_space_is_refused_before_it_is_copied() {
    if !tools() {
        return;
    }
    let (_reg, host) = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    write_context(dir.path(), false, 0o644, SystemTime::now() - Duration::from_secs(3600));
    fs::File::create(dir.path().join("app/big.bin")).unwrap().set_len(600 << 20).unwrap();
    fs::write(dir.path().join("galley.ncl"), config("cfbig", &host, "")).unwrap();
    // A plain lower-case path, so that builds work under the home and not in the host's /tmp.
    let home = tempfile::Builder::new().prefix(&format!("galley-cfbig-{}", std::process::id())).rand_bytes(0).tempdir().unwrap();
    let Some(_disk) = support::Tmpfs::mount(home.path(), "64m") else { return };
    let home = home.path();
    let out = run(galley(home, dir.path(), &["build"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("image `app`: the build context's 6291") && all.contains("bytes cannot be copied for the build"), "{all}");
    assert!(all.contains("not enough free space") && all.contains(".containerignore"), "{all}");
    let left: Vec<_> = fs::read_dir(home.join("tmp")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the refused build left {left:?}");
}

/// Setting `containerfile` and `base` together is an error at `base`; a FROM galley cannot pin
/// is an error at its line of the Containerfile.
#[test]
fn both_sources_and_a_bad_from_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Containerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
    fs::write(
        dir.path().join("galley.ncl"),
        "{\n  name = \"cfboth\",\n  images.app = {\n    base = \"127.0.0.1:5000/x/y:1\",\n    containerfile = { path = \"Containerfile\" },\n  },\n}\n",
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = run(galley(home.path(), dir.path(), &["check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("G040") && t.contains("galley.ncl:4:"), "{t}");
    assert!(t.contains("help:"), "{t}");

    fs::write(dir.path().join("galley.ncl"), "{\n  name = \"cfbad\",\n  images.app.containerfile = { path = \"Containerfile\" },\n}\n").unwrap();
    fs::write(dir.path().join("Containerfile"), "# a comment\nARG V=12\nFROM debian:${V}\nUSER 1000\n").unwrap();
    let out = run(galley(home.path(), dir.path(), &["check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("G041") && t.contains("Containerfile:3:") && t.contains("debian:12"), "{t}");
    let out = run(galley(home.path(), dir.path(), &["build"]));
    assert!(!out.status.success());
    assert!(text(&out).contains("Containerfile:3:"), "{}", text(&out));

    // Debian packages are galley's own build too: with a Containerfile they are refused at the field.
    fs::write(dir.path().join("Containerfile"), "FROM scratch\nCOPY a /a\nUSER 1000\n").unwrap();
    fs::write(dir.path().join("galley.ncl"), "{\n  name = \"cfpkg\",\n  images.app = {\n    containerfile = \"Containerfile\",\n    packages = [\"mawk\"],\n  },\n}\n").unwrap();
    let t = text(&run(galley(home.path(), dir.path(), &["check"])));
    assert!(t.contains("G040") && t.contains("galley.ncl:5:") && t.contains("packages"), "{t}");
}

/// `containerfile = "PATH"` is the record with that path and every default; another kind of
/// value is a located error.
#[test]
fn a_containerfile_path_alone_is_the_record_with_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Containerfile"), "FROM scratch\nCOPY a /a\nUSER 1000\n").unwrap();
    fs::write(dir.path().join("a"), "a\n").unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for form in ["\"Containerfile\"", "{ path = \"Containerfile\", context = \".\" }"] {
        fs::write(dir.path().join("galley.ncl"), format!("{{\n  name = \"cfshort\",\n  images.app.containerfile = {form},\n}}\n")).unwrap();
        let out = run(galley(home.path(), dir.path(), &["check"]));
        assert!(out.status.success(), "{form}: {}", text(&out));
        let out = run(galley(home.path(), dir.path(), &["build"]));
        assert!(out.status.success(), "{form}: {}", text(&out));
        digests.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert_eq!(digests[0], digests[1], "the short form builds the same image");
    fs::write(dir.path().join("galley.ncl"), "{\n  name = \"cfshort\",\n  images.app.containerfile = 3,\n}\n").unwrap();
    let out = run(galley(home.path(), dir.path(), &["check"]));
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("G041") && t.contains("galley.ncl:3:") && t.contains("help:"), "{t}");
}

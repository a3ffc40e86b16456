//! End-to-end tests of `galley build`, `push` and `load`: reproducibility, layout validity with
//! real OCI tools and podman, the layer cache, verified pulls from a real loopback registry, the
//! SSRF guard, and confined RUN steps (rootful and rootless).
//!
//! Tests that need a tool (podman, buildah, skopeo, umoci, oci-image-tool, docker-registry,
//! busybox) skip with a message when it is missing, unless GALLEY_TEST_REQUIRE_RUNTIME=1.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";

fn galley_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("galley")
}

fn galley(home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(galley_bin());
    c.env("GALLEY_HOME", home).env_remove("SOURCE_DATE_EPOCH").arg("-C").arg(dir);
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().expect("run galley");
    assert!(out.status.success(), "{c:?} failed:\nstdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn fails(mut c: Command) -> Output {
    let out = c.output().expect("run galley");
    assert!(!out.status.success(), "{c:?} should have failed:\nstdout: {}", String::from_utf8_lossy(&out.stdout));
    out
}

fn build_json(home: &Path, dir: &Path, extra: &[&str]) -> Value {
    let mut c = galley(home, dir);
    c.args(["--format", "json", "build"]).args(extra);
    serde_json::from_str(&ok(c)).expect("build prints JSON")
}

fn have(tool: &str) -> bool {
    support::require_tool(tool)
}

/// Debian's busybox-static.
fn have_busybox() -> bool {
    support::require_tool(BUSYBOX)
}

/// A unique, valid project name, so parallel tests and other users of podman never collide.
fn unique(prefix: &str) -> String {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{n}", std::process::id())
}

fn write(path: &Path, bytes: &[u8], mode: u32, mtime: SystemTime) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
}

/// A project directory with a busybox base image (`scratch` + /bin/busybox + /bin/sh) whose
/// entrypoint prints a greeting, plus whatever `extra` adds to the Nickel record.
fn busybox_project(name: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rootfs/bin")).unwrap();
    fs::copy(BUSYBOX, dir.path().join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.path().join("rootfs/bin/sh")).unwrap();
    fs::create_dir_all(dir.path().join("rootfs/work")).unwrap();
    fs::write(dir.path().join("rootfs/work/.keep"), b"").unwrap();
    fs::write(
        dir.path().join("galley.ncl"),
        format!(
            r#"{{
  name = "{name}",
  images.base = {{
    files = [{{ src = "rootfs", dst = "/" }}],
    entrypoint = ["/bin/busybox", "echo", "hello from galley"],
  }},
  {extra}
}}
"#
        ),
    )
    .unwrap();
    dir
}

// a. Reproducibility across homes, umask, TZ, mtimes and creation order.

fn hello_tree(dir: &Path, reverse: bool, mode_file: u32, mode_exec: u32, mtime: SystemTime) {
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("app/data.txt", b"some data\n", mode_file),
        ("app/bin/run.sh", b"#!/bin/sh\necho run\n", mode_exec),
        ("app/sub/deep/x.txt", b"deep\n", mode_file),
        ("app/z-last.txt", b"last\n", mode_file),
        ("hello.txt", b"hello, world\n", mode_file),
    ];
    if reverse {
        files.reverse();
    }
    for (p, bytes, mode) in files {
        write(&dir.join(p), bytes, mode, mtime);
    }
    std::os::unix::fs::symlink("data.txt", dir.join("app/link")).unwrap();
    fs::hard_link(dir.join("app/data.txt"), dir.join("app/hard")).unwrap();
    fs::write(
        dir.join("galley.ncl"),
        r#"{
  name = "repro",
  images.hello = {
    files = [
      { src = "hello.txt", dst = "/hello.txt", mode = "0444" },
      { src = "app", dst = "/opt/app", uid = 1000, gid = 1000 },
    ],
    users = [{ name = "app", uid = 1000, groups = ["staff"] }],
    groups = [{ name = "staff", gid = 50 }],
    env = { GREETING = "hi" },
    entrypoint = ["/opt/app/bin/run.sh"],
  },
}
"#,
    )
    .unwrap();
}

#[test]
fn same_project_gives_the_same_digest_in_fresh_homes() {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let (p1, p2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    hello_tree(p1.path(), false, 0o600, 0o700, old);
    hello_tree(p2.path(), true, 0o664, 0o775, SystemTime::now());
    let digest = |dir: &Path, umask: &str, tz: &str| {
        let home = tempfile::tempdir().unwrap();
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(galley_bin())
            .args(["-C"])
            .arg(dir)
            .args(["--format", "json", "build"])
            .env("GALLEY_HOME", home.path())
            .env("TZ", tz)
            .env_remove("SOURCE_DATE_EPOCH");
        let v: Value = serde_json::from_str(&ok(c)).unwrap();
        (v["images"]["hello"]["digest"].as_str().unwrap().to_owned(), home)
    };
    let (d1, h1) = digest(p1.path(), "077", "Pacific/Kiritimati");
    let (d2, _h2) = digest(p2.path(), "022", "UTC");
    assert_eq!(d1, d2, "the same project must give the same image digest");
    assert!(d1.starts_with("sha256:"));

    // The layer holds what was declared: normalized modes, owners, clamped times, links kept.
    let store = galley::image::Store::open(h1.path()).unwrap();
    let m = store.manifest(&galley::domain::Digest::parse(&d1).unwrap()).unwrap();
    let files = m.layers.last().unwrap();
    let f = store.open_blob(&files.digest).unwrap();
    let r = galley::image::layer::decompressing_reader(&files.media_type, f).unwrap();
    let mut ar = tar::Archive::new(r);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        seen.push(format!(
            "{} {:o} {}:{} {} {:?} {link}",
            e.path().unwrap().display(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.entry_type()
        ));
    }
    assert_eq!(
        seen,
        vec![
            "hello.txt 444 0:0 0 Regular ",
            "opt/ 755 0:0 0 Directory ",
            "opt/app/ 755 1000:1000 0 Directory ",
            "opt/app/bin/ 755 1000:1000 0 Directory ",
            "opt/app/bin/run.sh 755 1000:1000 0 Regular ",
            "opt/app/data.txt 644 1000:1000 0 Regular ",
            "opt/app/hard 644 1000:1000 0 Link opt/app/data.txt",
            "opt/app/link 777 1000:1000 0 Symlink data.txt",
            "opt/app/sub/ 755 1000:1000 0 Directory ",
            "opt/app/sub/deep/ 755 1000:1000 0 Directory ",
            "opt/app/sub/deep/x.txt 644 1000:1000 0 Regular ",
            "opt/app/z-last.txt 644 1000:1000 0 Regular ",
        ]
    );
    // Accounts.
    let accounts = galley::image::read_from_layers(&store, &m.layers, &["etc/passwd", "etc/group", "etc/shadow"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&accounts["etc/passwd"]), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/sbin/nologin\n");
    assert_eq!(String::from_utf8_lossy(&accounts["etc/group"]), "root:x:0:\nstaff:x:50:app\napp:x:1000:\n");
    assert!(String::from_utf8_lossy(&accounts["etc/shadow"]).contains("app:!:"));
    let cfg = store.json(&m.config.digest).unwrap();
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
    assert_eq!(cfg["config"]["Env"], serde_json::json!(["GREETING=hi"]));
}

#[test]
fn source_date_epoch_moves_the_clamp() {
    let p = tempfile::tempdir().unwrap();
    hello_tree(p.path(), false, 0o644, 0o755, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let home = tempfile::tempdir().unwrap();
    let plain = build_json(home.path(), p.path(), &[]);
    let mut c = galley(home.path(), p.path());
    c.env("SOURCE_DATE_EPOCH", "1700000000").args(["--format", "json", "build"]);
    let later: Value = serde_json::from_str(&ok(c)).unwrap();
    assert_ne!(plain["images"]["hello"]["digest"], later["images"]["hello"]["digest"]);
}

// b. Real OCI tools and podman accept the layout.

#[test]
fn the_layout_passes_oci_tools_and_runs_in_podman() {
    if !have_busybox() || !have("oci-image-tool") || !have("skopeo") || !have("umoci") || !have("podman") {
        return;
    }
    let name = unique("oci");
    let (p, home, digest) = built_busybox(&name, "");
    let store = home.path().join("store");
    let refname = format!("{name}/base");

    let out = Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", &format!("name={refname}")])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success(), "oci-image-tool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let out = Command::new("skopeo").arg("inspect").arg(format!("oci:{}:{refname}", store.display())).output().unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());

    let bundle = tempfile::tempdir().unwrap();
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{refname}", store.display()))
        .arg(bundle.path().join("b"))
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
    assert!(bundle.path().join("b/rootfs/bin/busybox").is_file());

    let load = |home: &Path| -> Value {
        let mut c = galley(home, p.path());
        c.args(["--format", "json", "load", "base"]);
        serde_json::from_str(&ok(c)).unwrap()
    };
    let first = load(home.path());
    let tag = first["tag"].as_str().unwrap().to_owned();
    assert_eq!(tag, format!("localhost/galley/{name}/base:{}", &digest[7..19]));
    let second = load(home.path());
    assert_eq!(second["copied"], false, "podman already has this digest");
    // Only galley's tags name the image: a name podman made up from the temporary layout's path
    // would keep it alive, unseen by gc, after those tags are gone.
    let names = Command::new("podman").args(["image", "inspect", "--format", "{{range .RepoTags}}{{.}} {{end}}", &tag]).output().unwrap();
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    assert!(names.split_whitespace().all(|n| n.starts_with("localhost/galley/")), "{names}");
    assert_eq!(run_and_remove(&tag), "hello from galley\n");
}

/// Run the loaded image `tag` once, remove it, and return what it printed.
fn run_and_remove(tag: &str) -> String {
    // Explicit, low rlimits: podman's defaults raise RLIMIT_NOFILE/NPROC, which fails where
    // CAP_SYS_RESOURCE is missing from the bounding set (as on this project's machines).
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", tag])
        .output()
        .unwrap();
    let _ = Command::new("podman").args(["rmi", tag]).output();
    assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A busybox project named `name` with `extra` config, built into a fresh home: (project, home,
/// image digest).
fn built_busybox(name: &str, extra: &str) -> (tempfile::TempDir, tempfile::TempDir, String) {
    let p = busybox_project(name, extra);
    let home = tempfile::tempdir().unwrap();
    let v = build_json(home.path(), p.path(), &[]);
    let digest = v["images"]["base"]["digest"].as_str().unwrap().to_owned();
    (p, home, digest)
}

#[test]
fn zstd_layers_reproduce_and_run_in_podman() {
    if !have_busybox() || !have("skopeo") || !have("podman") {
        return;
    }
    let name = unique("zstd");
    let (p, home, digest) = built_busybox(&name, "images.base.compression = 'zstd,");
    // Reproducible like gzip layers: a fresh home gives the same digest.
    let other = tempfile::tempdir().unwrap();
    assert_eq!(build_json(other.path(), p.path(), &[])["images"]["base"]["digest"], digest.as_str());

    // (oci-image-tool and umoci as packaged in Debian 12 predate the zstd media type; skopeo and
    // podman read it.)
    let store = home.path().join("store");
    let inspect = |raw: bool| -> Value {
        let mut c = Command::new("skopeo");
        c.arg("inspect");
        if raw {
            c.arg("--raw");
        }
        let out = c.arg(format!("oci:{}:{name}/base", store.display())).output().unwrap();
        assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(inspect(false)["Digest"], digest.as_str());
    let manifest = inspect(true);
    let types: Vec<&str> = manifest["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["application/vnd.oci.image.layer.v1.tar+zstd"]);

    let mut c = galley(home.path(), p.path());
    c.args(["--format", "json", "load", "base"]);
    let loaded: Value = serde_json::from_str(&ok(c)).unwrap();
    let tag = loaded["tag"].as_str().unwrap().to_owned();
    assert_eq!(run_and_remove(&tag), "hello from galley\n");
}

// c. The cache.

fn cached_flags(v: &Value, image: &str) -> Vec<(String, bool)> {
    v["images"][image]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["step"].as_str().unwrap().to_owned(), l["cached"].as_bool().unwrap()))
        .collect()
}

#[test]
fn unchanged_inputs_rebuild_nothing_and_one_file_rebuilds_one_layer() {
    let p = tempfile::tempdir().unwrap();
    hello_tree(p.path(), false, 0o644, 0o755, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let home = tempfile::tempdir().unwrap();
    let first = build_json(home.path(), p.path(), &[]);
    assert_eq!(cached_flags(&first, "hello"), vec![("accounts".into(), false), ("files".into(), false)]);
    let second = build_json(home.path(), p.path(), &[]);
    assert_eq!(cached_flags(&second, "hello"), vec![("accounts".into(), true), ("files".into(), true)]);
    assert_eq!(first["images"]["hello"]["digest"], second["images"]["hello"]["digest"]);
    // Text mode prints one line per image.
    let mut c = galley(home.path(), p.path());
    c.arg("build");
    assert_eq!(ok(c), format!("hello {}\n", second["images"]["hello"]["digest"].as_str().unwrap()));

    fs::write(p.path().join("app/sub/deep/x.txt"), b"changed\n").unwrap();
    let third = build_json(home.path(), p.path(), &[]);
    assert_eq!(cached_flags(&third, "hello"), vec![("accounts".into(), true), ("files".into(), false)]);
    assert_ne!(third["images"]["hello"]["digest"], second["images"]["hello"]["digest"]);
    // Offline builds work from the store.
    let offline = build_json(home.path(), p.path(), &["--offline"]);
    assert_eq!(offline["images"]["hello"]["digest"], third["images"]["hello"]["digest"]);

    // A same-size rewrite whose mtime is put back (as some checkout tools do) is still seen:
    // the change time moved, so neither the tree's stat fingerprint nor the file's entry match.
    let settle = |path: &Path| {
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap();
    };
    let x = p.path().join("app/sub/deep/x.txt");
    settle(&x);
    let settled = build_json(home.path(), p.path(), &[]);
    assert_eq!(settled["images"]["hello"]["digest"], third["images"]["hello"]["digest"]);
    assert_eq!(build_json(home.path(), p.path(), &[])["images"]["hello"]["digest"], third["images"]["hello"]["digest"]);
    fs::write(&x, b"CHANGED\n").unwrap();
    settle(&x);
    let rewritten = build_json(home.path(), p.path(), &[]);
    assert_eq!(cached_flags(&rewritten, "hello"), vec![("accounts".into(), true), ("files".into(), false)]);
    assert_ne!(rewritten["images"]["hello"]["digest"], third["images"]["hello"]["digest"]);
    let again = build_json(home.path(), p.path(), &[]);
    assert_eq!(cached_flags(&again, "hello"), vec![("accounts".into(), true), ("files".into(), true)]);
    assert_eq!(again["images"]["hello"]["digest"], rewritten["images"]["hello"]["digest"]);
}

// d. Pulls from a real registry.

fn app_project(name: &str, host: &str, allow_private: bool) -> tempfile::TempDir {
    busybox_project(
        name,
        &format!(
            r#"registries."{host}" = {{ insecure = true, allow_private = {allow_private} }},
  images.app = {{
    base = "{host}/galley/busybox:1",
    files = [{{ src = "rootfs/work/.keep", dst = "/srv/keep" }}],
    users = [{{ name = "web", uid = 1000 }}],
    entrypoint = ["/bin/busybox", "echo", "app"],
  }},"#
        ),
    )
}

#[test]
fn bases_are_pulled_verified_from_a_loopback_registry() {
    if !have_busybox() {
        return;
    }
    let Some(reg) = support::require_registry() else {
        return;
    };
    let host = reg.host();
    let name = unique("pull");
    let p = app_project(&name, &host, true);
    let home = tempfile::tempdir().unwrap();
    let built = build_json(home.path(), p.path(), &["base"]);
    let base_digest = built["images"]["base"]["digest"].as_str().unwrap().to_owned();
    let mut c = galley(home.path(), p.path());
    c.args(["push", "base", &format!("{host}/galley/busybox:1")]);
    assert_eq!(ok(c).trim(), format!("{host}/galley/busybox:1@{base_digest}"));

    // A fresh home pulls the base by tag and builds on top of it.
    let home2 = tempfile::tempdir().unwrap();
    let app = build_json(home2.path(), p.path(), &["app"]);
    let a = &app["images"]["app"];
    assert_eq!(a["base"]["digest"], base_digest.as_str());
    assert_eq!(a["base"]["platform"], "linux/amd64");
    let store2 = galley::image::Store::open(home2.path()).unwrap();
    let base_manifest = store2.manifest(&galley::domain::Digest::parse(&base_digest).unwrap()).unwrap();
    let app_manifest = store2.manifest(&galley::domain::Digest::parse(a["digest"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(app_manifest.layers[..base_manifest.layers.len()], base_manifest.layers[..]);
    assert_eq!(app_manifest.layers.len(), base_manifest.layers.len() + 2);
    // The same build again, pinned and offline, needs no registry.
    let again = build_json(home2.path(), p.path(), &["app", "--offline"]);
    assert_eq!(again["images"]["app"]["digest"], a["digest"]);

    // Tamper with the base's layer in the registry's storage (same size, one byte changed).
    let layer = &base_manifest.layers[0];
    let blob = reg.blob_file(&layer.digest.to_string());
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let home3 = tempfile::tempdir().unwrap();
    let mut c = galley(home3.path(), p.path());
    c.args(["build", "app"]);
    let out = fails(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed verification") && err.contains(&layer.digest.to_string()), "{err}");
    let store3 = galley::image::Store::open(home3.path()).unwrap();
    assert!(!store3.has_blob(&layer.digest), "a tampered blob must not enter the store");
    assert!(!store3.has_blob(&galley::domain::Digest::parse(&base_digest).unwrap()), "nor the manifest that names it");
    let leftovers: Vec<_> = fs::read_dir(home3.path().join("tmp")).unwrap().filter_map(Result::ok).map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with("blob-")).collect();
    assert!(leftovers.is_empty(), "partial downloads must be removed: {leftovers:?}");
}

#[test]
fn private_addresses_are_refused_without_allow_private() {
    if !have_busybox() {
        return;
    }
    // A listener we own stands in for the registry: nothing may ever connect to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let p = app_project(&unique("guard"), &host, false);
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["build", "app"]);
    let out = fails(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SSRF guard") && err.contains("loopback") && err.contains("allow_private"), "{err}");
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "no TCP connection may reach the refused address");
    // The same goes for push.
    let mut c = galley(home.path(), p.path());
    c.args(["push", "base", &format!("{host}/x/y:1")]);
    let out = fails(c);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSRF guard"));
    assert!(listener.accept().is_err());
}

// e. RUN steps.

const CONFINEMENT: &str = r#"set -e
test "$(grep CapEff /proc/self/status | tr -d '\t ')" = "CapEff:0000000000000000"
test "$(grep -c : /proc/net/dev)" = 1
! wget -q -T 2 -O /dev/null http://127.0.0.1:PORT/ 2>/dev/null
test -z "$(find / \( -path /proc -o -path /sys \) -prune -o -type s -print)"
for s in /run/podman/podman.sock /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock /run/buildkit/buildkitd.sock; do test ! -e $s; done
test -f /galley/src/galley.ncl
! touch /galley/src/written-by-step 2>/dev/null
echo confined > /work/confined.txt"#;

fn run_project(name: &str, port: u16) -> tempfile::TempDir {
    let script = CONFINEMENT.replace("PORT", &port.to_string());
    busybox_project(
        name,
        &format!(
            r#"images.runner = {{
    files = [{{ src = "rootfs", dst = "/" }}],
    run = [
      {{ command = "/bin/busybox --install -s /bin && echo hi > /work/out.txt && rm /work/.keep" }},
      {{ command = ["/bin/sh", "-c", m%"
{script}
"%] }},
    ],
    entrypoint = ["/bin/cat", "/work/out.txt"],
  }},"#
        ),
    )
}

#[test]
fn run_steps_are_confined_and_deterministic() {
    if !have_busybox() || !have("buildah") {
        return;
    }
    // A host listener on loopback: the step's own loopback is another network namespace.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = run_project(&unique("run"), port);
    let (h1, h2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = build_json(h1.path(), p.path(), &["runner"]);
    let b = build_json(h2.path(), p.path(), &["runner"]);
    assert_eq!(a["images"]["runner"]["digest"], b["images"]["runner"]["digest"], "a deterministic RUN step gives the same digest");
    assert!(!p.path().join("written-by-step").exists(), "the step must not write to the project");
    assert!(listener.accept().is_err(), "the step must not reach the host");
    // The step's changes, re-packed: the new file, the whiteout of the deleted one.
    let store = galley::image::Store::open(h1.path()).unwrap();
    let m = store.manifest(&galley::domain::Digest::parse(a["images"]["runner"]["digest"].as_str().unwrap()).unwrap()).unwrap();
    let found = galley::image::read_from_layers(&store, &m.layers, &["work/out.txt", "work/.keep", "work/confined.txt"]).unwrap();
    assert_eq!(found.get("work/out.txt").map(Vec::as_slice), Some(&b"hi\n"[..]));
    assert!(!found.contains_key("work/.keep"), "deletions become whiteouts");
    assert_eq!(found.get("work/confined.txt").map(Vec::as_slice), Some(&b"confined\n"[..]));
    let cached = build_json(h1.path(), p.path(), &["runner"]);
    assert_eq!(cached_flags(&cached, "runner"), vec![("files".into(), true), ("run 0".into(), true), ("run 1".into(), true)]);
}

/// Guards the race of one build's clean-up removing the base layers another build on the same
/// base is adding to buildah's storage at that moment (`layer not known`, seen when the suite
/// ran builds side by side). Builds that run at once, each with its own home, all succeed and
/// agree. The race is narrow: this test does not hit it on every run.
#[test]
fn builds_on_one_base_at_once_do_not_remove_each_others_layers() {
    if !have_busybox() || !have("buildah") {
        return;
    }
    let p = busybox_project(
        &unique("race"),
        r#"images.step = {
    files = [{ src = "rootfs", dst = "/" }],
    run = [{ command = "echo hi > /work/out.txt" }],
  },"#,
    );
    for round in 0..2 {
        let homes: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        // Started apart, so one build's copy into the storage meets another's clean-up.
        let children: Vec<_> = homes
            .iter()
            .map(|h| {
                std::thread::sleep(std::time::Duration::from_millis(120));
                let mut c = galley(h.path(), p.path());
                c.args(["--format", "json", "build", "step"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let digests: Vec<String> = children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(out.status.success(), "round {round}: {text}{}", String::from_utf8_lossy(&out.stderr));
                let v: Value = serde_json::from_str(&text).unwrap();
                v["images"]["step"]["digest"].as_str().unwrap().to_owned()
            })
            .collect();
        assert!(digests.iter().all(|d| *d == digests[0]), "round {round}: {digests:?}");
    }
}

#[test]
fn a_step_that_writes_to_the_project_fails() {
    if !have_busybox() || !have("buildah") {
        return;
    }
    let p = busybox_project(
        &unique("rw"),
        r#"images.bad = { files = [{ src = "rootfs", dst = "/" }], run = [{ command = "touch /galley/src/escaped" }] },"#,
    );
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["build", "bad"]);
    let out = fails(c);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUN step failed"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!p.path().join("escaped").exists());
}

#[test]
fn check_repro_builds_twice_and_agrees() {
    let p = tempfile::tempdir().unwrap();
    hello_tree(p.path(), false, 0o644, 0o755, SystemTime::now());
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["--format", "json", "build", "--check-repro"]);
    let v: Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(v["images"]["hello"]["reproducible"], true, "{v}");
}

#[test]
fn check_repro_names_the_file_a_nondeterministic_step_writes() {
    if !have_busybox() || !have("buildah") {
        return;
    }
    let p = busybox_project(
        &unique("nondet"),
        r#"images.stamp = {
    files = [{ src = "rootfs", dst = "/" }],
    run = [{ command = ["/bin/busybox", "sh", "-c", "/bin/busybox cat /proc/sys/kernel/random/uuid > /work/stamp"] }],
  },"#,
    );
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["--format", "json", "build", "--check-repro", "stamp"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["images"]["stamp"];
    assert_eq!(r["reproducible"], false, "{v}");
    assert_ne!(r["digests"][0], r["digests"][1]);
    // The files layer agrees; the step's layer differs in exactly the file it stamped, and the
    // image config differs with it (its diff_ids).
    let differences: Vec<(String, Value)> =
        r["differences"].as_array().unwrap().iter().map(|d| (d["layer"].as_str().unwrap().to_owned(), d["path"].clone())).collect();
    assert_eq!(differences, vec![("run 0".to_owned(), Value::from("work/stamp")), ("config".to_owned(), Value::Null)]);

    let mut c = galley(home.path(), p.path());
    c.args(["build", "--check-repro", "stamp"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("stamp NOT reproducible: sha256:"), "{text}");
    assert!(text.contains("\n  run 0: work/stamp\n"), "{text}");
}

/// The unprivileged user rootless builds run as (created when the tests run as root).
const ROOTLESS_USER: &str = "galley-rootless";

#[test]
fn rootless_end_to_end_build() {
    if !have_busybox() || !have("buildah") {
        return;
    }
    let is_root = unsafe { libc::geteuid() } == 0;
    let name = unique("rootless");
    let work = tempfile::Builder::new().prefix("galley-rootless-").tempdir_in("/tmp").unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let p = run_project(&name, 9);
    let proj = work.path().join("project");
    let status = Command::new("cp").arg("-a").arg(p.path()).arg(&proj).status().unwrap();
    assert!(status.success());
    let home = work.path().join("home");
    let user_home = work.path().join("user");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&user_home).unwrap();
    // The build directory may be private to root (a checkout under a 0700 folder): run a copy.
    let bin = work.path().join("galley");
    fs::copy(galley_bin(), &bin).unwrap();
    let mut cmd = if is_root {
        if !have("useradd") || !have("runuser") || !have("newuidmap") {
            return;
        }
        if Command::new("id").arg(ROOTLESS_USER).output().map(|o| !o.status.success()).unwrap_or(true) {
            let out = Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", ROOTLESS_USER]).output().unwrap();
            if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("already exists") {
                eprintln!("SKIP: cannot create {ROOTLESS_USER}: {}", String::from_utf8_lossy(&out.stderr));
                return;
            }
        }
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(f).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with(&format!("{ROOTLESS_USER}:"))) {
                fs::write(f, format!("{text}{ROOTLESS_USER}:300000:65536\n")).unwrap();
            }
        }
        let chown = Command::new("chown").arg("-R").arg(format!("{ROOTLESS_USER}:{ROOTLESS_USER}")).arg(work.path()).status().unwrap();
        assert!(chown.success());
        let mut c = Command::new("runuser");
        c.args(["-u", ROOTLESS_USER, "--"]).arg("env");
        c
    } else {
        Command::new("env")
    };
    cmd.arg(format!("HOME={}", user_home.display()))
        .arg(format!("GALLEY_HOME={}", home.display()))
        .arg("XDG_RUNTIME_DIR=")
        .arg(&bin)
        .arg("-C")
        .arg(&proj)
        .args(["--format", "json", "build", "runner"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && (stderr.contains("newuidmap") || stderr.contains("user namespace")) {
        support::skip(&format!("rootless buildah is not possible here: {stderr}"));
        return;
    }
    assert!(out.status.success(), "rootless build failed: {stderr}");
    let rootless: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same project built by the current user gives the same digest.
    let mine = build_json(tempfile::tempdir().unwrap().path(), &proj, &["runner"]);
    assert_eq!(rootless["images"]["runner"]["digest"], mine["images"]["runner"]["digest"]);
    // Give the files back so the temp dir can be removed.
    if is_root {
        let _ = Command::new("chown").arg("-R").arg("0:0").arg(work.path()).status();
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).output().ok()?;
        out.status.success().then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Every file under `dir` with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push((e.path(), meta.len()));
        }
    }
    out
}

/// A full disk is named before a layer is written: building a 16 MiB file that does not compress
/// into a GALLEY_HOME on a 4 MiB file system fails with the path and the bytes needed and
/// available, and leaves no blob and no temporary file in the store.
#[test]
fn a_layer_larger_than_the_free_space_is_refused_before_it_is_written() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return support::skip("mounting a small tmpfs needs root");
    }
    let Some(disk) = SmallDisk::mount("4m") else {
        return support::skip("cannot mount a tmpfs");
    };
    let home = disk.0.path();
    let dir = tempfile::tempdir().unwrap();
    let noise = support::incompressible(16 << 20);
    fs::write(dir.path().join("noise.bin"), &noise).unwrap();
    fs::write(
        dir.path().join("galley.ncl"),
        r#"{ name = "full-disk", images.big = { files = [{ src = "noise.bin", dst = "/noise.bin" }] } }"#,
    )
    .unwrap();
    let out = fails({
        let mut c = galley(home, dir.path());
        c.arg("build");
        c
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tmp = home.join("tmp");
    assert!(stderr.contains(&format!("not enough free space in {}", tmp.display())), "{stderr}");
    let needed: u64 = stderr.split(" bytes needed").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{stderr}"));
    assert!(needed >= 16 << 20, "the need counts the whole layer: {needed}");
    assert!(stderr.contains(" available"), "{stderr}");
    assert!(files_under(&tmp).is_empty(), "no temporary file is left: {:?}", files_under(&tmp));
    let blobs = files_under(&home.join("store/blobs"));
    assert!(blobs.is_empty(), "no blob is left in the store: {blobs:?}");
    let big: Vec<_> = files_under(home).into_iter().filter(|(_, size)| *size > 64 << 10).collect();
    assert!(big.is_empty(), "nothing large was written: {big:?}");
}

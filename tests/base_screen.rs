//! Hostile bases from a real loopback registry: layers whose entries leave the image root, an
//! accounts file that is a gzip bomb, oversized manifests and descriptors, and a RUN step that
//! never ends. Each is refused with what it is named, and a refused pull leaves no blob behind.
//!
//! Bases are crafted here with the `tar` crate into an OCI layout and pushed with `skopeo copy`;
//! manifests the tools would not write are sent with a plain HTTP PUT on loopback.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sha2::Digest as _;

fn galley(home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("galley"));
    c.env("GALLEY_HOME", home).env_remove("SOURCE_DATE_EPOCH").arg("-C").arg(dir);
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run the command")
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{n}", std::process::id())
}

/// One raw tar entry, the name written into the header as is (the `tar` crate's builder would
/// refuse `..` and absolute names).
fn raw_entry(out: &mut Vec<u8>, name: &str, ty: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(ty);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(tar).unwrap();
    g.finish().unwrap()
}

/// An OCI layout at `dir` with one image (ref `1`) of the given gzip layers (and their diff ids).
fn layout(dir: &Path, layers: &[(Vec<u8>, String)]) -> (String, Value) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(_, d)| d).collect::<Vec<_>>() },
    }))
    .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len() },
        "layers": layers.iter().map(|(gz, _)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": gz.len(),
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let index = json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(&bytes), "size": bytes.len(),
        "annotations": { "org.opencontainers.image.ref.name": "1" },
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (sha(&bytes), manifest)
}

/// Push a base of one layer, the tar `plain`, to `host/repo:1`; returns its layer digest and
/// manifest.
fn push_base(host: &str, repo: &str, plain: &[u8]) -> (String, Value) {
    push_gz(host, repo, gzip(plain), sha(plain))
}

fn push_gz(host: &str, repo: &str, gz: Vec<u8>, diff_id: String) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let layer = sha(&gz);
    let (_, manifest) = layout(dir.path(), &[(gz, diff_id)]);
    let mut c = Command::new("skopeo");
    c.args(["copy", "--quiet", "--dest-tls-verify=false", &format!("oci:{}:1", dir.path().display()), &format!("docker://{host}/{repo}:1")]);
    let out = run(c);
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    (layer, manifest)
}

/// PUT `manifest` (of `media_type`) as `host/repo:tag` with a plain HTTP request on loopback.
fn put_manifest(host: &str, repo: &str, tag: &str, media_type: &str, manifest: &[u8]) {
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        manifest.len()
    )
    .unwrap();
    s.write_all(manifest).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "the registry refused the manifest: {answer}");
}

/// A project whose image `app` is on `host/repo:1`, with `extra` fields.
fn project(host: &str, repo: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("galley.ncl"),
        format!(
            r#"{{
  name = "{}",
  registries."{host}" = {{ insecure = true, allow_private = true }},
  images.app = {{ base = "{host}/{repo}:1", entrypoint = ["/bin/true"], {extra} }},
}}
"#,
            unique("screen")
        ),
    )
    .unwrap();
    dir
}

const RUN_STEP: &str = r#"run = [{ command = ["/bin/sh", "-c", "true"] }]"#;

fn blobs_in(home: &Path) -> Vec<String> {
    let dir = home.join("store/blobs/sha256");
    fs::read_dir(dir).map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

/// Build `app` and expect a refusal; returns stderr.
fn refused(home: &Path, p: &Path) -> String {
    let mut c = galley(home, p);
    c.args(["build", "app"]);
    let out = run(c);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the build should have been refused:\n{err}");
    assert!(!err.contains("RUN step failed"), "the refusal must come before any RUN step: {err}");
    err
}

fn hostile_base_is_refused(entries: &[(&str, tar::EntryType, &str)], named: &str, why: &str) {
    if !support::require_tool("skopeo") {
        return;
    }
    let Some(reg) = support::require_registry() else { return };
    let mut plain = Vec::new();
    for (name, ty, link) in entries {
        raw_entry(&mut plain, name, *ty, link, if ty.is_file() { b"x" } else { b"" });
    }
    plain.extend_from_slice(&[0; 1024]);
    let (layer, _) = push_base(&reg.host(), "hostile/base", &plain);
    let p = project(&reg.host(), "hostile/base", RUN_STEP);
    let home = tempfile::tempdir().unwrap();
    let err = refused(home.path(), p.path());
    let base = format!("{}/hostile/base:1", reg.host());
    assert!(err.contains(&format!("base `{base}`")) && err.contains(&layer) && err.contains(&format!("entry `{named}`")) && err.contains(why), "{err}");
    assert!(!home.path().join("cache/screened").join(layer.trim_start_matches("sha256:")).exists(), "a refused layer gets no clean verdict");
}

#[test]
fn a_base_layer_entry_with_dotdot_is_refused_before_any_run_step() {
    hostile_base_is_refused(&[("../etc/x", tar::EntryType::Regular, "")], "../etc/x", "`..` component");
}

#[test]
fn a_base_layer_entry_with_an_absolute_name_is_refused_before_any_run_step() {
    hostile_base_is_refused(&[("/abs", tar::EntryType::Regular, "")], "/abs", "absolute name");
}

#[test]
fn a_base_layer_file_through_a_symlink_to_root_is_refused_before_any_run_step() {
    hostile_base_is_refused(
        &[("escape", tar::EntryType::Symlink, "/"), ("escape/etc/x", tar::EntryType::Regular, "")],
        "escape/etc/x",
        "through the symlink `escape`",
    );
}

#[test]
fn a_base_layer_fifo_is_refused_before_any_run_step() {
    hostile_base_is_refused(&[("hang", tar::EntryType::Fifo, "")], "hang", "FIFO");
}

#[test]
fn a_clean_base_layer_is_screened_once_and_remembered() {
    if !support::require_tool("skopeo") {
        return;
    }
    let Some(reg) = support::require_registry() else { return };
    let mut plain = Vec::new();
    raw_entry(&mut plain, "etc/hello", tar::EntryType::Regular, "", b"hi\n");
    raw_entry(&mut plain, "bin/sh", tar::EntryType::Symlink, "/bin/busybox", b"");
    plain.extend_from_slice(&[0; 1024]);
    let (layer, _) = push_base(&reg.host(), "clean/base", &plain);
    let p = project(&reg.host(), "clean/base", "");
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["build", "app"]);
    let out = run(c);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdict = home.path().join("cache/screened").join(layer.trim_start_matches("sha256:"));
    assert!(verdict.is_file(), "the clean verdict is kept under the layer cache");
    let seen = fs::metadata(&verdict).unwrap().modified().unwrap();
    let mut c = galley(home.path(), p.path());
    c.args(["build", "app", "--offline"]);
    assert!(run(c).status.success());
    assert_eq!(fs::metadata(&verdict).unwrap().modified().unwrap(), seen, "a rebuild does not screen the layer again");
}

/// A registry holding a base of one plain file at `repo:1`, with its layer digest and manifest;
/// `None` (after a skip) without skopeo or docker-registry.
fn registry_with_plain_base(repo: &str) -> Option<(support::registry::Registry, (String, Value))> {
    if !support::require_tool("skopeo") {
        return None;
    }
    let reg = support::require_registry()?;
    let mut plain = Vec::new();
    raw_entry(&mut plain, "etc/hello", tar::EntryType::Regular, "", b"hi\n");
    plain.extend_from_slice(&[0; 1024]);
    let pushed = push_base(&reg.host(), repo, &plain);
    Some((reg, pushed))
}

/// Peak resident memory of the children waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    u.ru_maxrss as u64 * 1024
}

#[test]
fn a_gzip_bomb_passwd_in_a_base_is_refused_with_bounded_memory() {
    if !support::require_tool("skopeo") {
        return;
    }
    let Some(reg) = support::require_registry() else { return };
    // /etc/passwd of 1 GiB of zeros, streamed through gzip: about 1 MB on the wire.
    const BOMB: u64 = 1 << 30;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut plain_hash = sha2::Sha256::new();
    let mut emit = |bytes: &[u8], gz: &mut flate2::write::GzEncoder<Vec<u8>>| {
        plain_hash.update(bytes);
        gz.write_all(bytes).unwrap();
    };
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/passwd").unwrap();
    h.set_size(BOMB);
    h.set_mode(0o644);
    h.set_cksum();
    emit(h.as_bytes(), &mut gz);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(BOMB >> 20) {
        emit(&zeros, &mut gz);
    }
    emit(&[0; 1024], &mut gz);
    let diff_id = format!("sha256:{}", hex::encode(plain_hash.finalize()));
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 4 << 20, "the bomb is small on the wire: {}", gz.len());
    push_gz(&reg.host(), "bomb/base", gz, diff_id);
    let p = project(&reg.host(), "bomb/base", r#"users = [{ name = "web", uid = 1000 }]"#);
    let home = tempfile::tempdir().unwrap();
    let err = refused(home.path(), p.path());
    assert!(err.contains("/etc/passwd is 1073741824 bytes") && err.contains("bomb/base"), "{err}");
    let peak = children_peak_rss();
    assert!(peak < 300 << 20, "galley's peak RSS was {} MiB", peak >> 20);
}

#[test]
fn a_manifest_over_the_size_cap_is_refused_before_it_is_read_and_leaves_no_blob() {
    let Some((reg, (_, manifest))) = registry_with_plain_base("big/base") else { return };
    // docker-registry itself refuses to store a manifest over 4 MiB, so the index names the
    // platform manifest with a size over the cap: galley must refuse before fetching it.
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&bytes), "size": 5 << 20,
        "platform": { "os": "linux", "architecture": "amd64" },
    }]});
    put_manifest(&reg.host(), "big/base", "1", "application/vnd.oci.image.index.v1+json", &serde_json::to_vec(&index).unwrap());
    let p = project(&reg.host(), "big/base", "");
    let home = tempfile::tempdir().unwrap();
    let err = refused(home.path(), p.path());
    assert!(err.contains("the manifest is 5242880 bytes, over galley's limit of 4194304"), "{err}");
    assert_eq!(blobs_in(home.path()), Vec::<String>::new(), "nothing of a refused pull stays in the store");
}

#[test]
fn an_absurd_or_wrong_descriptor_size_is_refused_and_leaves_no_blob() {
    let Some((reg, (layer, manifest))) = registry_with_plain_base("size/base") else { return };
    let real = manifest["layers"][0]["size"].as_u64().unwrap();
    for (tag, size, says) in [("absurd", 1u64 << 62, "over galley's limit"), ("wrong", real + 1, "failed verification")] {
        let mut m = manifest.clone();
        m["layers"][0]["size"] = json!(size);
        put_manifest(&reg.host(), "size/base", tag, "application/vnd.oci.image.manifest.v1+json", &serde_json::to_vec(&m).unwrap());
        let p = tempfile::tempdir().unwrap();
        fs::write(
            p.path().join("galley.ncl"),
            format!(
                r#"{{ name = "{}", registries."{host}" = {{ insecure = true, allow_private = true }}, images.app = {{ base = "{host}/size/base:{tag}", entrypoint = ["/bin/true"] }} }}"#,
                unique("size"),
                host = reg.host()
            ),
        )
        .unwrap();
        let home = tempfile::tempdir().unwrap();
        let err = refused(home.path(), p.path());
        assert!(err.contains(says) && err.contains(&layer), "{tag}: {err}");
        assert_eq!(blobs_in(home.path()), Vec::<String>::new(), "{tag}: a refused pull leaves not even its config blob");
    }
}

#[test]
fn a_run_step_that_blocks_is_stopped_at_its_time_limit() {
    if !support::require_tools(&["/bin/busybox", "buildah"]) {
        return;
    }
    let p = tempfile::tempdir().unwrap();
    fs::create_dir_all(p.path().join("rootfs/bin")).unwrap();
    fs::copy("/bin/busybox", p.path().join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", p.path().join("rootfs/bin/sh")).unwrap();
    fs::write(
        p.path().join("galley.ncl"),
        format!(
            r#"{{ name = "{}", images.app = {{ files = [{{ src = "rootfs", dst = "/" }}], run = [{{ command = ["/bin/busybox", "sleep", "300"] }}] }} }}"#,
            unique("hang")
        ),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut c = galley(home.path(), p.path());
    c.env("GALLEY_RUN_TIMEOUT_SECS", "3").args(["build", "app"]);
    let start = Instant::now();
    let out = run(c);
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("`buildah run") && err.contains("time limit of 3s") && err.contains("GALLEY_RUN_TIMEOUT_SECS"), "{err}");
    assert!(took < Duration::from_secs(60), "the step ran {took:?}, far past its limit");
    let mut ps = Command::new("pgrep");
    ps.args(["-f", "busybox sleep 300"]);
    let left = String::from_utf8_lossy(&run(ps).stdout).into_owned();
    assert!(left.trim().is_empty(), "the stopped step's process must not outlive the build: {left}");
}

/// A hostile registry on loopback: `/v2/` answers 200, and a manifest by tag is an endless body
/// (no `Content-Length`) or one whose `Content-Length` claims `claimed` bytes, sent as fast as
/// the socket takes it or, with `trickle`, a byte every 50 ms. Returns the address and a
/// counter of the body bytes it managed to send.
fn endless_manifest_registry(claimed: Option<u64>, trickle: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
                if !line.contains("/manifests/") {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}");
                    return;
                }
                let length = claimed.map(|c| format!("Content-Length: {c}\r\n")).unwrap_or_default();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{length}Connection: close\r\n\r\n");
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                if trickle {
                    for _ in 0..10_000 {
                        if conn.write_all(b" ").is_err() {
                            return;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return;
                }
                // Up to 256 MiB of a JSON string that never ends, so an unbounded reader fails late.
                let chunk = [b' '; 64 << 10];
                for _ in 0..(256 << 20) / chunk.len() {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (host, sent)
}

/// The attack: a registry that keeps a pull open for hours by sending a manifest a byte at a
/// time, each within the client's read timeout. It is cut once it falls below the minimum pace
/// after the grace period (16 KiB/s after 30 s), and nothing stays in the store.
#[test]
fn a_manifest_trickled_a_byte_at_a_time_is_cut_at_the_minimum_pace() {
    let (host, sent) = endless_manifest_registry(None, true);
    let p = project(&host, "trickle/base", "");
    let home = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = refused(home.path(), p.path());
    let seconds = start.elapsed().as_secs_f64();
    assert!(err.contains("slower than the 16 KiB/s every download must keep after its first 30 s"), "{err}");
    assert!((30.0..60.0).contains(&seconds), "refused after {seconds:.1}s");
    assert_eq!(blobs_in(home.path()), Vec::<String>::new(), "nothing of a refused pull stays in the store");
    eprintln!("trickled manifest: {} bytes served, refused in {seconds:.1}s", sent.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_manifest_by_tag_that_never_ends_is_cut_at_the_size_cap_as_it_streams() {
    use std::sync::atomic::Ordering;
    const CAP: u64 = 4 << 20;
    for (claimed, says) in [(None, "grew past galley's limit of 4194304 bytes"), (Some(1u64 << 40), "is 1099511627776 bytes, over galley's limit of 4194304")] {
        let (host, sent) = endless_manifest_registry(claimed, false);
        let p = project(&host, "endless/base", "");
        let home = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let err = refused(home.path(), p.path());
        let seconds = start.elapsed().as_secs_f64();
        assert!(err.contains(says), "{claimed:?}: {err}");
        // What the registry got to send: the cap plus what the sockets buffer, far below 256 MiB.
        std::thread::sleep(Duration::from_millis(200));
        let served = sent.load(Ordering::SeqCst);
        assert!(served <= CAP + (16 << 20), "{claimed:?}: the registry sent {served} bytes against a cap of {CAP}");
        assert!(seconds < 30.0, "{claimed:?}: refused after {seconds:.1}s");
        assert_eq!(blobs_in(home.path()), Vec::<String>::new(), "{claimed:?}: nothing of a refused pull stays in the store");
        eprintln!("{claimed:?}: served {served} bytes (cap {CAP}), refused in {seconds:.2}s");
    }
}

#[test]
fn a_base_layer_entry_through_a_symlink_a_lower_layer_made_is_refused_naming_both_layers() {
    if !support::require_tool("skopeo") {
        return;
    }
    let Some(reg) = support::require_registry() else { return };
    let tar_of = |entries: &[(&str, tar::EntryType, &str)]| {
        let mut plain = Vec::new();
        for (name, ty, link) in entries {
            raw_entry(&mut plain, name, *ty, link, if ty.is_file() { b"x" } else { b"" });
        }
        plain.extend_from_slice(&[0; 1024]);
        plain
    };
    // Each layer alone is clean; stacked, layer 2 writes through layer 1's link to the root.
    let lower = tar_of(&[("escape", tar::EntryType::Symlink, "/")]);
    let upper = tar_of(&[("escape/etc/x", tar::EntryType::Regular, "")]);
    let layers: Vec<(Vec<u8>, String)> = [lower, upper].iter().map(|t| (gzip(t), sha(t))).collect();
    let (low, up) = (sha(&layers[0].0), sha(&layers[1].0));
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), &layers);
    let mut c = Command::new("skopeo");
    c.args(["copy", "--quiet", "--dest-tls-verify=false", &format!("oci:{}:1", dir.path().display()), &format!("docker://{}/stacked/base:1", reg.host())]);
    let out = run(c);
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    let p = project(&reg.host(), "stacked/base", RUN_STEP);
    let home = tempfile::tempdir().unwrap();
    let err = refused(home.path(), p.path());
    assert!(err.contains(&up) && err.contains("entry `escape/etc/x`"), "the upper layer and its entry are named: {err}");
    assert!(err.contains(&format!("symlink `escape` made in layer 1 of the base ({low})")), "the lower layer is named: {err}");
    let screened = home.path().join("cache/screened");
    assert!(screened.join(low.trim_start_matches("sha256:")).is_file(), "the lower layer alone is clean");
    assert_eq!(fs::read_dir(&screened).unwrap().count(), 1, "the refused chain gets no clean verdict");
}

#[test]
fn a_pull_onto_a_nearly_full_disk_is_refused_before_the_layer_is_written_naming_the_figures() {
    if !support::require_tool("skopeo") {
        return;
    }
    let Some(reg) = support::require_registry() else { return };
    // 16 MiB that gzip cannot shrink, for a GALLEY_HOME of 8 MiB.
    let mut noise = Vec::with_capacity(16 << 20);
    let mut block = sha2::Sha256::digest(b"galley").to_vec();
    while noise.len() < 16 << 20 {
        block = sha2::Sha256::digest(&block).to_vec();
        noise.extend_from_slice(&block);
    }
    let mut plain = Vec::new();
    raw_entry(&mut plain, "noise", tar::EntryType::Regular, "", &noise);
    plain.extend_from_slice(&[0; 1024]);
    let (layer, manifest) = push_base(&reg.host(), "full/base", &plain);
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    assert!(size > 16 << 20, "the layer stays large compressed: {size}");
    let p = project(&reg.host(), "full/base", "");
    let home = tempfile::tempdir().unwrap();
    let Some(_disk) = support::Tmpfs::mount(home.path(), "8m") else { return };
    let err = refused(home.path(), p.path());
    assert!(err.contains(&layer) && err.contains("not enough free space in") && err.contains(&format!("{size} bytes needed")), "{err}");
    assert!(err.contains(&home.path().display().to_string()), "the path is named: {err}");
    assert!(!blobs_in(home.path()).iter().any(|b| layer.ends_with(b.as_str())), "no part of the layer is stored");
    let out = Command::new("df").args(["--output=used", "-B1"]).arg(home.path()).output().unwrap();
    let used: u64 = String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(used < 1 << 20, "the refusal came before the download: {used} bytes used on the 8 MiB disk");
}

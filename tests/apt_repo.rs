//! The loopback APT repository fixture (tests/support/apt_repo.rs) checked against Debian's own
//! tools: what it serves verifies with gpgv and APT, its hashes chain Release -> Packages -> .deb,
//! each attack helper breaks exactly the link it names, and APT's own resolution of
//! python3-minimal against it is the closure setup.sh fetched.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use support::apt_repo::{self, gpgv, require_apt_repo, sha256_file, AptRepo};

/// One response: status, headers (lower-cased names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `r`; a HEAD response has no body whatever its Content-Length says.
fn read_response(r: &mut impl BufRead, head_only: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).expect("a status line").parse().unwrap();
    let mut headers = vec![];
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        let (k, v) = line.trim_end().split_once(':').expect("a header");
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").expect("Content-Length").1.parse().unwrap();
    let mut body = vec![0; if head_only { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    Response { status, headers, body }
}

fn request(repo: &AptRepo, method: &str, path: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", repo.port())).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(s), method == "HEAD")
}

fn get(repo: &AptRepo, rel: &str) -> Response {
    request(repo, "GET", &format!("/{rel}"))
}

fn output_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The SHA-256 the served Packages index gives package `name`'s .deb.
fn indexed_sha256(repo: &AptRepo, name: &str) -> String {
    repo.index_field(name, "SHA256").unwrap_or_else(|| panic!("Packages has no SHA256 for {name}"))
}

#[test]
fn in_release_and_release_gpg_fetched_over_http_verify_with_the_repository_keyring() {
    let Some(repo) = require_apt_repo(None) else { return };
    assert!(repo.url().starts_with("http://127.0.0.1:") && repo.url().ends_with('/'), "{}", repo.url());
    let scratch = tempfile::tempdir().unwrap();
    let fetched = |rel: &str| {
        let r = get(&repo, rel);
        assert_eq!(r.status, 200, "GET /{rel}");
        let on_disk = std::fs::read(repo.dir().join(rel)).unwrap();
        assert_eq!(r.body, on_disk, "GET /{rel} serves the file");
        assert_eq!(r.header("content-length"), Some(on_disk.len().to_string().as_str()));
        let p = scratch.path().join(Path::new(rel).file_name().unwrap());
        std::fs::write(&p, &r.body).unwrap();
        p
    };
    let in_release = fetched("dists/stable/InRelease");
    let release = fetched("dists/stable/Release");
    let release_gpg = fetched("dists/stable/Release.gpg");
    let out = gpgv(&repo.keyring(), &[&in_release]);
    assert!(out.status.success(), "gpgv InRelease: {}", output_text(&out));
    let out = gpgv(&repo.keyring(), &[&release_gpg, &release]);
    assert!(out.status.success(), "gpgv Release.gpg Release: {}", output_text(&out));
    // The clearsigned text is the Release file itself.
    let clear = std::fs::read_to_string(&in_release).unwrap();
    let release_text = std::fs::read_to_string(&release).unwrap();
    assert!(clear.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"), "{clear}");
    assert!(clear.contains(&release_text), "InRelease does not carry Release's text");
    for field in ["Origin: galley-test", "Label: galley-test", "Suite: stable", "Codename: stable", "Components: main", "Date: "] {
        assert!(release_text.lines().any(|l| l.starts_with(field)), "Release lacks {field:?}:\n{release_text}");
    }
    assert!(release_text.contains(&format!("Architectures: {}\n", repo.arch())), "{release_text}");
    let armored = std::fs::read_to_string(repo.keyring_armored()).unwrap();
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"), "{armored}");
    assert_eq!(
        repo.requests(),
        ["/dists/stable/InRelease", "/dists/stable/Release", "/dists/stable/Release.gpg"],
        "the server records each request"
    );
}

#[test]
fn the_server_answers_head_404_and_keep_alive_and_refuses_paths_out_of_its_root() {
    let Some(repo) = require_apt_repo(Some(&["netbase"])) else { return };
    let deb = repo.deb_path("netbase");
    let rel = repo.rel(&deb);
    let head = request(&repo, "HEAD", &format!("/{rel}"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(std::fs::metadata(&deb).unwrap().len().to_string().as_str()));
    assert_eq!(request(&repo, "GET", "/dists/stable/missing").status, 404);
    assert_eq!(request(&repo, "GET", "/pool").status, 404, "a folder is not served");
    assert_eq!(request(&repo, "GET", "/../archive-keyring.gpg").status, 404, "a path out of the root");
    assert_eq!(request(&repo, "GET", "/dists/%2e%2e/../archive-keyring.gpg").status, 404, "an encoded path out of the root");
    assert_eq!(request(&repo, "POST", "/dists/stable/Release").status, 405);
    // Two requests sent at once on one connection get two answers in order.
    let mut s = TcpStream::connect(("127.0.0.1", repo.port())).unwrap();
    write!(s, "GET /dists/stable/Release HTTP/1.1\r\nHost: x\r\n\r\nGET /{rel} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).body, std::fs::read(repo.release()).unwrap());
    assert_eq!(read_response(&mut r, false).body, std::fs::read(&deb).unwrap());
    assert_eq!(repo.request_count(&format!("/{rel}")), 2);
    let log = repo.request_log();
    assert_eq!(log[0].method, "HEAD");
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 404, 404, 404, 404, 405, 200, 200]);
    repo.clear_requests();
    assert!(repo.requests().is_empty());
}

/// Attack: a mirror that never stops sending, and one that fails.
#[test]
fn serve_endless_streams_past_any_budget_and_serve_status_fails_the_path() {
    let Some(repo) = require_apt_repo(Some(&["netbase"])) else { return };
    repo.serve_endless("/dists/stable/InRelease");
    let mut s = TcpStream::connect(("127.0.0.1", repo.port())).unwrap();
    write!(s, "GET /dists/stable/InRelease HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut length = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = Some(v.trim().parse::<u64>().unwrap());
        }
    }
    assert_eq!(length, Some(1 << 40));
    // 32 MiB, far more than the file it stands for, and it goes on.
    let mut sink = vec![0u8; 1 << 20];
    for _ in 0..32 {
        std::io::Read::read_exact(&mut r, &mut sink).unwrap();
    }
    drop(r);
    repo.serve_status("/dists/stable/Release", 500);
    assert_eq!(get(&repo, "dists/stable/Release").status, 500);
    repo.serve_normally("/dists/stable/Release");
    repo.serve_normally("/dists/stable/InRelease");
    assert_eq!(get(&repo, "dists/stable/Release").body, std::fs::read(repo.release()).unwrap());
    assert_eq!(get(&repo, "dists/stable/InRelease").body, std::fs::read(repo.in_release()).unwrap());
    // APT too fails on a failing mirror.
    repo.serve_status("/dists/stable/InRelease", 500);
    repo.serve_status("/dists/stable/Release", 500);
    let out = repo.apt_update();
    assert!(!out.status.success(), "apt-get update passed against a failing mirror: {}", output_text(&out));
}

#[test]
fn release_vouches_for_each_index_and_the_index_for_each_deb() {
    let Some(repo) = require_apt_repo(None) else { return };
    let index = repo.packages_index();
    let binary = format!("main/binary-{}", repo.arch());
    for name in ["Packages", "Packages.gz", "Packages.xz"] {
        let want = repo.release_sha256(&format!("{binary}/{name}")).unwrap_or_else(|| panic!("Release lists no {name}"));
        assert_eq!(sha256_file(&index.with_file_name(name)), want, "{name}");
    }
    let closure = apt_repo::cached_closure().unwrap();
    for name in &closure {
        let deb = repo.deb_path(name);
        assert_eq!(sha256_file(&deb), indexed_sha256(&repo, name), "{name}");
        assert_eq!(repo.index_field(name, "Size").unwrap(), std::fs::metadata(&deb).unwrap().len().to_string(), "{name}");
        assert_eq!(repo.index_field(name, "Filename").unwrap(), repo.rel(&deb), "{name}");
        // What the pool serves is the package setup.sh fetched, byte for byte.
        assert_eq!(sha256_file(&deb), sha256_file(&apt_repo::cached_deb(name).unwrap()), "{name}");
    }
}

#[test]
fn indexes_and_release_are_the_same_bytes_when_built_twice() {
    let Some(a) = require_apt_repo(Some(&["netbase", "readline-common", "dpkg"])) else { return };
    let b = AptRepo::build(Some(&["dpkg", "readline-common", "netbase"]));
    for (x, y) in [(a.release(), b.release()), (a.packages_index(), b.packages_index())] {
        assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap(), "{}", x.display());
    }
    let gz = |r: &AptRepo| std::fs::read(r.packages_index().with_extension("gz")).unwrap();
    assert_eq!(gz(&a), gz(&b), "Packages.gz");
}

/// Attack: a mirror serves a changed .deb. Only the index's hash of it tells.
#[test]
fn tamper_deb_changes_the_debs_hash_and_nothing_else() {
    let Some(repo) = require_apt_repo(None) else { return };
    let deb = repo.deb_path("libc6");
    let size = std::fs::metadata(&deb).unwrap().len();
    assert_eq!(sha256_file(&deb), indexed_sha256(&repo, "libc6"));
    let release = std::fs::read(repo.release()).unwrap();
    repo.tamper_deb("libc6");
    assert_eq!(std::fs::metadata(&deb).unwrap().len(), size, "the size is kept");
    assert_ne!(sha256_file(&deb), indexed_sha256(&repo, "libc6"), "the tampered .deb still matches Packages");
    assert_eq!(std::fs::read(repo.release()).unwrap(), release);
    let out = gpgv(&repo.keyring(), &[&repo.in_release()]);
    assert!(out.status.success(), "the signature no longer verifies: {}", output_text(&out));
    let binary = format!("main/binary-{}/Packages", repo.arch());
    assert_eq!(repo.release_sha256(&binary).unwrap(), sha256_file(&repo.packages_index()));
    assert_eq!(sha256_file(&repo.deb_path("dpkg")), indexed_sha256(&repo, "dpkg"), "another .deb changed");
}

/// Attack: a mirror serves an index that the signed Release does not vouch for.
#[test]
fn tamper_index_breaks_the_release_hash_of_every_index_but_not_the_signature() {
    let Some(repo) = require_apt_repo(None) else { return };
    let binary = format!("main/binary-{}", repo.arch());
    let index = repo.packages_index();
    let size = std::fs::metadata(&index).unwrap().len();
    repo.tamper_index();
    assert_eq!(std::fs::metadata(&index).unwrap().len(), size);
    for name in ["Packages", "Packages.gz", "Packages.xz"] {
        let listed = repo.release_sha256(&format!("{binary}/{name}")).unwrap();
        assert_ne!(sha256_file(&index.with_file_name(name)), listed, "{name} still matches Release");
    }
    let out = gpgv(&repo.keyring(), &[&repo.in_release()]);
    assert!(out.status.success(), "the signature no longer verifies: {}", output_text(&out));
    // The compressed indexes say the same as the plain one: whichever a client takes is tampered.
    let xz = Command::new("xz").arg("-dc").arg(index.with_extension("xz")).output().unwrap();
    assert_eq!(xz.stdout, std::fs::read(&index).unwrap());
    // And APT itself refuses the repository.
    let out = repo.apt_update();
    assert!(!out.status.success(), "apt-get update accepted a tampered index: {}", output_text(&out));
    assert!(output_text(&out).contains("Hash Sum mismatch"), "{}", output_text(&out));
}

/// Attack: a valid signature by a key the client does not trust.
#[test]
fn resign_with_other_key_gives_a_valid_signature_that_the_keyring_refuses() {
    let Some(repo) = require_apt_repo(Some(&["netbase"])) else { return };
    let trusted = std::fs::read(repo.keyring()).unwrap();
    let other = repo.resign_with_other_key();
    assert_eq!(std::fs::read(repo.keyring()).unwrap(), trusted, "the trusted keyring changed");
    assert_ne!(std::fs::read(&other).unwrap(), trusted);
    for files in [vec![repo.in_release()], vec![repo.release_gpg(), repo.release()]] {
        let files: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let out = gpgv(&repo.keyring(), &files);
        assert!(!out.status.success(), "gpgv accepted a foreign signature: {}", output_text(&out));
        let out = gpgv(&other, &files);
        assert!(out.status.success(), "the other key's signature is not valid: {}", output_text(&out));
    }
    let out = repo.apt_update();
    assert!(!out.status.success(), "apt-get update accepted a foreign signature: {}", output_text(&out));
    assert!(output_text(&out).contains("NO_PUBKEY"), "{}", output_text(&out));
}

/// Attack: an unsigned repository.
#[test]
fn drop_signature_leaves_only_the_unsigned_release() {
    let Some(repo) = require_apt_repo(Some(&["netbase"])) else { return };
    repo.drop_signature();
    assert_eq!(get(&repo, "dists/stable/InRelease").status, 404);
    assert_eq!(get(&repo, "dists/stable/Release.gpg").status, 404);
    assert_eq!(get(&repo, "dists/stable/Release").status, 200);
    let out = repo.apt_update();
    assert!(!out.status.success(), "apt-get update accepted an unsigned repository: {}", output_text(&out));
    assert!(output_text(&out).contains("is not signed"), "{}", output_text(&out));
}

#[test]
fn apt_simulate_of_python3_minimal_is_the_cached_closure_at_its_versions() {
    let Some(repo) = require_apt_repo(None) else { return };
    let got = repo.apt_simulate(&["python3-minimal"]);
    let closure = apt_repo::cached_closure().unwrap();
    let names: BTreeSet<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, closure.iter().map(String::as_str).collect(), "APT's closure against the loopback repository");
    for name in ["python3-minimal", "libc6", "dpkg"] {
        assert!(names.contains(name), "{name} missing from {got:?}");
    }
    for (name, version, arch) in &got {
        let deb = repo.deb_path(name);
        let want = (apt_repo::deb_field(&deb, "Version"), apt_repo::deb_field(&deb, "Architecture"));
        assert_eq!((version, arch), (&want.0, &want.1), "{name}");
    }
    // APT read the signed release and an index from the loopback server, and downloaded no .deb.
    let requests = repo.requests();
    assert!(requests.iter().any(|p| p == "/dists/stable/InRelease"), "{requests:?}");
    assert!(requests.iter().any(|p| p.starts_with("/dists/stable/main/binary-")), "{requests:?}");
    assert!(!requests.iter().any(|p| p.ends_with(".deb")), "{requests:?}");
    // The host's APT state knows nothing of the loopback repository.
    let host_lists = std::fs::read_dir("/var/lib/apt/lists").into_iter().flatten().flatten();
    let leaked: Vec<String> =
        host_lists.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains("127.0.0.1")).collect();
    assert!(leaked.is_empty(), "apt_simulate wrote host lists: {leaked:?}");
}

#[test]
fn apt_simulate_satisfies_a_virtual_package_through_provides() {
    let pkgs = ["base-files", "mawk", "libc6", "libgcc-s1", "gcc-12-base"];
    let Some(repo) = require_apt_repo(Some(&pkgs)) else { return };
    assert_eq!(repo.index_field("base-files", "Pre-Depends").as_deref(), Some("awk"));
    assert_eq!(repo.index_field("mawk", "Provides").as_deref(), Some("awk"));
    let names: BTreeSet<String> = repo.apt_simulate(&["base-files"]).into_iter().map(|(n, _, _)| n).collect();
    assert!(names.contains("mawk"), "awk is provided by mawk: {names:?}");
    assert!(names.contains("libc6"), "{names:?}");
}

#[test]
fn apt_simulate_takes_the_second_alternative_only_when_the_first_is_missing() {
    let Some(full) = require_apt_repo(None) else { return };
    assert!(full.index_field("readline-common", "Depends").unwrap().contains("dpkg (>= 1.15.4) | install-info"));
    let got = full.apt_simulate(&["readline-common"]);
    assert!(got.iter().any(|(n, _, a)| n == "readline-common" && a == "all"), "{got:?}");
    assert!(got.iter().any(|(n, _, _)| n == "dpkg") && !got.iter().any(|(n, _, _)| n == "install-info"), "{got:?}");

    let without_dpkg = AptRepo::build(Some(&["readline-common", "install-info", "libc6", "libgcc-s1", "gcc-12-base"]));
    let names: BTreeSet<String> = without_dpkg.apt_simulate(&["readline-common"]).into_iter().map(|(n, _, _)| n).collect();
    assert!(names.contains("install-info") && !names.contains("dpkg"), "{names:?}");
}

#[test]
fn a_version_bump_through_add_deb_and_reindex_is_signed_and_what_apt_then_installs() {
    let Some(mut repo) = require_apt_repo(Some(&["netbase", "libc6"])) else { return };
    let old = repo.index_field("netbase", "Version").unwrap();
    let bumped = repo.deb_with_version("netbase", &format!("{old}+bump1"));
    repo.add_deb(&bumped);
    repo.reindex();
    let index = std::fs::read_to_string(repo.packages_index()).unwrap();
    assert_eq!(index.matches("Package: netbase\n").count(), 1, "the old version is still indexed:\n{index}");
    assert_eq!(repo.index_field("netbase", "Version"), Some(format!("{old}+bump1")));
    assert_eq!(sha256_file(&repo.deb_path("netbase")), indexed_sha256(&repo, "netbase"));
    assert!(repo.index_field("libc6", "Version").is_some(), "libc6 left the index");
    let out = gpgv(&repo.keyring(), &[&repo.in_release()]);
    assert!(out.status.success(), "the new Release is not signed by the repository key: {}", output_text(&out));
    let got = repo.apt_simulate(&["netbase"]);
    assert_eq!(got, BTreeSet::from([("netbase".to_owned(), format!("{old}+bump1"), "all".to_owned())]));
}

#[test]
fn deb_with_fields_gives_a_dependency_apt_cannot_satisfy_and_says_which() {
    let Some(mut repo) = require_apt_repo(Some(&["netbase"])) else { return };
    let deb = repo.deb_with_fields("netbase", &[("Depends", "galley-no-such-package (>= 1)"), ("Version", "6.4+dep1")]);
    assert_eq!(apt_repo::deb_field(&deb, "Depends"), "galley-no-such-package (>= 1)");
    let cached = apt_repo::cached_deb("netbase").unwrap();
    let description = apt_repo::deb_field(&cached, "Description");
    assert!(description.lines().count() > 1, "netbase's Description has continuation lines: {description}");
    assert_eq!(apt_repo::deb_field(&deb, "Description"), description, "the other fields are kept as they were");
    repo.add_deb(&deb);
    repo.reindex();
    let out = repo.apt_simulate_output(&["netbase"]);
    assert!(!out.status.success(), "APT installed an unsatisfiable package: {}", output_text(&out));
    let said = output_text(&out);
    assert!(said.contains("Depends: galley-no-such-package (>= 1) but it is not installable"), "{said}");
}

#[test]
fn synthetic_deb_carries_its_files_modes_and_dependencies_into_the_repository() {
    let Some(mut repo) = require_apt_repo(Some(&["libc6", "libgcc-s1", "gcc-12-base"])) else { return };
    let deb = repo.synthetic_deb(
        &[("Package", "galley-hello"), ("Version", "1:1.0-1"), ("Architecture", "all"), ("Depends", "libc6"), ("Provides", "hello-virtual")],
        &[("/usr/bin/galley-hello", b"#!/bin/sh\necho hello\n", 0o755), ("/usr/share/galley-hello/README", b"read me\n", 0o644)],
    );
    assert_eq!(deb.file_name().unwrap(), "galley-hello_1.0-1_all.deb", "named without the epoch, as the pool names it");
    let contents = Command::new("dpkg-deb").arg("--contents").arg(&deb).output().unwrap();
    let listing = String::from_utf8_lossy(&contents.stdout);
    assert!(listing.lines().any(|l| l.starts_with("-rwxr-xr-x root/root") && l.ends_with("./usr/bin/galley-hello")), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("-rw-r--r-- root/root") && l.ends_with("./usr/share/galley-hello/README")), "{listing}");
    repo.add_deb(&deb);
    repo.reindex();
    assert_eq!(repo.index_field("galley-hello", "Provides").as_deref(), Some("hello-virtual"));
    let names: BTreeSet<(String, String)> = repo.apt_simulate(&["hello-virtual"]).into_iter().map(|(n, v, _)| (n, v)).collect();
    assert!(names.contains(&("galley-hello".to_owned(), "1:1.0-1".to_owned())), "{names:?}");
    assert!(names.iter().any(|(n, _)| n == "libc6"), "{names:?}");
}

/// Attack: a freeze. A Release signed by the right key but past its Valid-Until date.
#[test]
fn set_valid_until_in_the_past_gives_a_validly_signed_release_that_apt_calls_expired() {
    let Some(mut repo) = require_apt_repo(Some(&["netbase"])) else { return };
    let release = std::fs::read_to_string(repo.release()).unwrap();
    assert!(!release.contains("Valid-Until:"), "{release}");
    repo.set_valid_until(Some(86_400));
    repo.reindex();
    let release = std::fs::read_to_string(repo.release()).unwrap();
    assert!(release.contains("Valid-Until: Fri, 02 Jan 1970 00:00:00 UTC\n"), "{release}");
    let out = gpgv(&repo.keyring(), &[&repo.in_release()]);
    assert!(out.status.success(), "the expired Release is not validly signed: {}", output_text(&out));
    let out = repo.apt_update();
    assert!(!out.status.success(), "apt-get update accepted an expired Release: {}", output_text(&out));
    assert!(output_text(&out).contains("expired"), "{}", output_text(&out));
}

/// Attack: a rollback. An older Release, validly signed, served again after an update.
#[test]
fn restore_serves_an_earlier_snapshot_still_validly_signed() {
    let Some(mut repo) = require_apt_repo(Some(&["netbase"])) else { return };
    let old_release = std::fs::read(repo.release()).unwrap();
    let old_version = repo.index_field("netbase", "Version").unwrap();
    let before = repo.snapshot();
    let bumped = repo.deb_with_version("netbase", &format!("{old_version}+new"));
    repo.add_deb(&bumped);
    repo.reindex();
    assert_eq!(repo.index_field("netbase", "Version"), Some(format!("{old_version}+new")));
    repo.restore(&before);
    assert_eq!(get(&repo, "dists/stable/Release").body, old_release, "the old Release is served");
    assert_eq!(repo.index_field("netbase", "Version"), Some(old_version.clone()));
    assert_eq!(sha256_file(&repo.deb_path("netbase")), indexed_sha256(&repo, "netbase"));
    let out = gpgv(&repo.keyring(), &[&repo.in_release()]);
    assert!(out.status.success(), "the restored Release is not validly signed: {}", output_text(&out));
}

#[test]
fn inst_lines_of_apt_get_simulate_parse_into_name_version_and_arch() {
    let text = "NOTE: This is only a simulation!\nInst gcc-12-base (12.2.0-14+deb12u1 galley-test:stable [amd64])\n\
                Inst libc6 [2.36-9] (2.36-9+deb12u14 galley-test:stable [amd64]) []\nConf libc6 (2.36-9+deb12u14 galley-test:stable [amd64])\n\
                Inst netbase (6.4 galley-test:stable [all])\n";
    let want: BTreeSet<(String, String, String)> =
        [("gcc-12-base", "12.2.0-14+deb12u1", "amd64"), ("libc6", "2.36-9+deb12u14", "amd64"), ("netbase", "6.4", "all")]
            .iter()
            .map(|(n, v, a)| (n.to_string(), v.to_string(), a.to_string()))
            .collect();
    assert_eq!(apt_repo::parse_inst_lines(text), want);
}

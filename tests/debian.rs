//! Declarative Debian packages end to end, against a signed loopback APT repository built from
//! real Debian packages (tests/support/apt_repo.rs): resolution equal to APT's, the closure
//! pinned in the lock, one layer per package, python3 running in podman, the same digest in any
//! fresh home, and the attacks of a hostile mirror refused with nothing entering the store.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::apt_repo::{AptRepo, require_apt_repo};
use support::runner::{TestProject, podman, text};
use support::{Sandbox, galley_in, runtime_available};

/// galley.ncl of project `name` with image `py` installing `packages` from `repo`.
fn config(name: &str, repo: &AptRepo, packages: &[&str], extra: &str) -> String {
    let list: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"{{
  name = "{name}",
  registries."127.0.0.1:{port}" = {{ insecure = true, allow_private = true }},
  images.py = {{
    debian = {{ mirror = "{url}", suite = "{suite}", keyring = "archive-keyring.gpg" }},
    packages = [{list}],
    labels = {{ "io.galley.test.owner" = "{name}" }},
  }},
{extra}
}}
"#,
        port = repo.port(),
        url = repo.url().trim_end_matches('/'),
        suite = repo.suite(),
        list = list.join(", "),
    )
}

/// A project (with its own home) declaring `packages`, trusting the repository's key.
fn project(repo: &AptRepo, packages: &[&str]) -> Sandbox {
    let s = Sandbox::with_config(&config("deb", repo, packages, ""));
    std::fs::copy(repo.keyring(), s.path().join("archive-keyring.gpg")).unwrap();
    s
}

fn ok(o: &std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(o));
    text(o)
}

/// The blobs in a home's store.
fn blobs(home: &Path) -> BTreeSet<String> {
    std::fs::read_dir(home.join("store/blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// No blob and no temporary file: a refused fetch left nothing behind.
fn assert_nothing_stored(home: &Path) {
    assert!(blobs(home).is_empty(), "the store holds {:?}", blobs(home));
    let tmp: Vec<_> = std::fs::read_dir(home.join("tmp")).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

fn lock_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("galley.lock")).unwrap()).unwrap()
}

fn manifest_digest(dir: &Path) -> String {
    lock_json(dir)["images"]["py"]["output"]["manifest"].as_str().unwrap().to_owned()
}

/// python3-minimal and mawk on scratch: python3 runs, mawk's alternatives link is made, every
/// package has its status record, and `galley verify` passes.
#[test]
fn python3_minimal_on_scratch_runs_in_podman_and_passes_verify() {
    if !runtime_available() {
        return;
    }
    let Some(repo) = require_apt_repo(None) else { return };
    let p = TestProject::new("deb");
    let sandbox = r#"  sandboxes.py = galley.presets.untrusted & {
    image = "py",
    user = "1000:1000",
    command = ["/usr/bin/python3", "-c", "import time; time.sleep(1000000)"],
  },"#;
    let text_cfg = config(&p.name, &repo, &["python3-minimal", "mawk"], sandbox).replacen('{', "let galley = import \"galley/std.ncl\" in\n{", 1);
    std::fs::write(p.dir.path().join("galley.ncl"), text_cfg).unwrap();
    std::fs::copy(repo.keyring(), p.dir.path().join("archive-keyring.gpg")).unwrap();
    p.galley_code(&["lock"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    let container = p.container("default", "py");
    let out = podman(&["exec", &container, "/usr/bin/python3", "-c", "print(6*7)"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    // mawk's postinst declares /usr/bin/awk through update-alternatives: the link is made.
    let out = podman(&["exec", &container, "/usr/bin/awk", "BEGIN { print 6*7 }"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{}", text(&out));
    let out = podman(&["exec", &container, "/usr/bin/python3", "-c", "import os; print(os.readlink('/usr/bin/awk'), os.readlink('/etc/alternatives/awk'))"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/etc/alternatives/awk /usr/bin/mawk", "{}", text(&out));
    // What scanners read: one status record per package of the closure.
    let out = podman(&["exec", &container, "/usr/bin/python3", "-c", "import os; print(' '.join(sorted(os.listdir('/var/lib/dpkg/status.d'))))"]);
    let listed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().filter(|f| !f.ends_with(".md5sums")).map(str::to_owned).collect();
    let locked: BTreeSet<String> = lock_json(p.dir.path())["images"]["py"]["debian"]["packages"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(listed, locked);
    p.galley_code(&["verify"], 0);
}

#[test]
fn the_locked_closure_is_what_apt_installs_and_two_fresh_homes_build_the_same_digest() {
    let Some(repo) = require_apt_repo(None) else { return };
    let s = project(&repo, &["python3-minimal"]);
    ok(&s.galley(&["lock"]), "galley lock");
    let lock = lock_json(s.path());
    let locked: BTreeSet<(String, String, String)> = lock["images"]["py"]["debian"]["packages"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, line)| {
            let mut words = line.as_str().unwrap().split(' ');
            (name.clone(), words.next().unwrap().to_owned(), words.next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(locked, repo.apt_simulate(&["python3-minimal"]));
    // Essential packages the repository has but nothing needs stay out.
    assert!(!locked.iter().any(|(n, _, _)| n == "base-files"), "{locked:?}");

    // A second fresh home builds the same image from the lock, and --locked proves it.
    let other = tempfile::tempdir().unwrap();
    let out = galley_in(s.path(), other.path(), &["build", "--locked"]);
    let shown = ok(&out, "galley build --locked in a fresh home");
    assert!(shown.contains(&manifest_digest(s.path())), "{shown}");
}

/// Attack: a mirror serves a changed .deb (same size, one byte flipped).
#[test]
fn a_tampered_deb_is_refused_and_nothing_enters_the_store() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.tamper_deb("python3-minimal");
    let s = project(&repo, &["python3-minimal"]);
    let out = s.galley(&["lock"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("package `python3-minimal`") && all.contains("does not match its pin") && all.contains("nothing entered the store"), "{all}");
    let tampered = support::apt_repo::sha256_file(&repo.deb_path("python3-minimal"));
    let pinned = repo.index_field("python3-minimal", "SHA256").unwrap();
    let stored = blobs(s.home.path());
    assert!(!stored.contains(&tampered) && !stored.contains(&pinned), "{stored:?}");
    assert!(!s.path().join("galley.lock").exists());
}

/// Guards the host's disk against a package larger than the free space (a mirror's 8 MiB
/// package, a GALLEY_HOME on a 4 MiB file system): refused before its download is written, with
/// the bytes needed and available, and nothing left in the store or its temporary folder.
#[test]
fn a_package_larger_than_the_free_space_is_refused_before_it_is_written() {
    let Some((_repo, _, s)) = one_file_package("huge", "/usr/share/huge/noise.bin", &support::incompressible(8 << 20)) else { return };
    let Some(_small) = support::Tmpfs::mount(s.home.path(), "4m") else { return };
    let out = s.galley(&["lock"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("package `huge`") && all.contains("not enough free space in") && all.contains(" bytes needed"), "{all}");
    assert_nothing_stored(s.home.path());
    assert!(!s.path().join("galley.lock").exists());
}

/// Guards the host's disk against a package that unpacks to far more than it weighs (48 MiB of
/// zeros in a .deb of a few KiB, a GALLEY_HOME on a 16 MiB file system): `galley lock`, which
/// builds the package's layer, is refused at that file, naming the package, the file and the
/// bytes needed and available, with no layer stored.
#[test]
fn a_package_unpacking_past_the_free_space_is_refused_at_its_file() {
    let Some((_repo, deb, s)) = one_file_package("bomb", "/usr/share/bomb/zeros", &vec![0u8; 48 << 20]) else { return };
    assert!(std::fs::metadata(&deb).unwrap().len() < 1 << 20, "the package is small");
    let Some(_small) = support::Tmpfs::mount(s.home.path(), "16m") else { return };
    let out = s.galley(&["lock"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("package `bomb`") && all.contains("`usr/share/bomb/zeros`: not enough free space in the store: 50331648 bytes needed"),
        "{all}"
    );
    let only_the_package: BTreeSet<String> = [support::apt_repo::sha256_file(&deb)].into();
    assert_eq!(blobs(s.home.path()), only_the_package, "no layer was stored");
    assert!(!s.path().join("galley.lock").exists());
}

/// A repository serving one package `name` of one file, the .deb, and a project declaring it.
fn one_file_package(name: &str, file: &str, contents: &[u8]) -> Option<(AptRepo, std::path::PathBuf, Sandbox)> {
    let mut repo = require_apt_repo(Some(&[]))?;
    let deb = repo.synthetic_deb(&[("Package", name), ("Version", "1.0"), ("Architecture", "all")], &[(file, contents, 0o644)]);
    repo.add_deb(&deb);
    repo.reindex();
    let s = project(&repo, &[name]);
    Some((repo, deb, s))
}

/// `galley lock` against `repo` fails (exit 2) saying each of `expected`, and nothing enters
/// the store.
fn lock_is_refused(repo: &AptRepo, expected: &[&str]) {
    let s = project(repo, &["python3-minimal"]);
    let out = s.galley(&["lock"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    for e in expected {
        assert!(all.contains(e), "{e:?} not in: {all}");
    }
    assert_nothing_stored(s.home.path());
    assert!(!s.path().join("galley.lock").exists());
}

/// Attack: a pull request's keyring that is a link to a host file (here the real keyring, kept
/// outside the project) or to an endless one (`/dev/zero`, which galley read whole into
/// memory), a FIFO (which hung `lock`), or larger than any keyring. Each is refused before
/// anything is fetched.
#[test]
fn a_keyring_linked_out_of_the_project_a_fifo_or_too_large_is_refused_unread() {
    let Some(repo) = require_apt_repo(None) else { return };
    let host = repo.keyring();
    let cases: [(&str, &dyn Fn(&Path)); 4] = [
        ("keyring `archive-keyring.gpg` leads out of the project through a symbolic link", &|p| std::os::unix::fs::symlink(&host, p).unwrap()),
        ("keyring `archive-keyring.gpg` leads out of the project through a symbolic link (to /dev/zero)", &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ("keyring `archive-keyring.gpg` is not a file of the project", &|p| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success())),
        ("keyring `archive-keyring.gpg`: is 2097152 bytes, over galley's limit of 1048576 bytes", &|p| std::fs::File::create(p).unwrap().set_len(2 << 20).unwrap()),
    ];
    for (says, plant) in cases {
        let s = Sandbox::with_config(&config("deb", &repo, &["python3-minimal"], ""));
        plant(&s.path().join("archive-keyring.gpg"));
        let out = s.galley(&["lock"]);
        assert_eq!(out.status.code(), Some(2), "{says}: {}", text(&out));
        assert!(text(&out).contains(says), "{says}: {}", text(&out));
        assert_nothing_stored(s.home.path());
    }
    assert!(repo.requests().is_empty(), "the archive was asked: {:?}", repo.requests());
}

/// Attack: a mirror serves a Packages index the signed Release does not vouch for.
#[test]
fn an_index_not_matching_the_release_is_refused() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.tamper_index();
    lock_is_refused(&repo, &["Packages.xz does not match the signed Release", "SHA-256"]);
}

/// Attack: the Release is validly signed, by a key the project does not trust.
#[test]
fn a_release_signed_by_another_key_is_refused() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.resign_with_other_key();
    lock_is_refused(&repo, &["InRelease is refused: no signature on it verifies with a key of the keyring", "debian.keyring"]);
}

/// Attack: an unsigned repository (no InRelease, no Release.gpg).
#[test]
fn a_release_without_a_signature_is_refused() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.drop_signature();
    lock_is_refused(&repo, &["Release is refused: it carries no OpenPGP signature"]);
}

/// Attack: a mirror freezing its clients serves a validly signed Release whose Valid-Until passed.
#[test]
fn an_expired_release_is_refused() {
    let Some(mut repo) = require_apt_repo(None) else { return };
    repo.set_valid_until(Some(1_000_000_000));
    repo.reindex();
    lock_is_refused(&repo, &["InRelease is refused: its Valid-Until passed", "check_valid_until"]);
}

/// Attack: a rollback. After the lock moved to a newer Release, the mirror serves the older one
/// again, still validly signed.
#[test]
fn a_rollback_to_an_older_release_is_refused() {
    let Some(mut repo) = require_apt_repo(None) else { return };
    let old = repo.snapshot();
    let bumped = repo.deb_with_version("libmd0", "1.0.4-2+galley1");
    repo.add_deb(&bumped);
    // The archive publishes a day later (apt-repo.sh dates the Release by SOURCE_DATE_EPOCH).
    // SAFETY: nextest runs each test in a process of its own; nothing else reads the environment now.
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "1704153600") };
    repo.reindex();
    unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
    let s = project(&repo, &["python3-minimal"]);
    ok(&s.galley(&["lock"]), "galley lock");
    let before = std::fs::read_to_string(s.path().join("galley.lock")).unwrap();
    repo.restore(&old);
    let out = s.galley(&["lock", "--update"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("seconds before the Release galley.lock was resolved from (a rollback"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(s.path().join("galley.lock")).unwrap(), before);
}

/// Attack: a server that never stops sending (an InRelease of 1 TiB).
#[test]
fn an_endless_release_is_cut_at_its_cap() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.serve_endless("/dists/stable/InRelease");
    let started = std::time::Instant::now();
    lock_is_refused(&repo, &["InRelease: more than the 8388608 bytes allowed"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// Attack: a mirror that trickles its Release, a byte every 100 ms (each gap far inside the read
/// timeout), to hold `galley lock` for the 29 hours 1 MiB would take: the download is cut once it
/// falls below the minimum pace after its grace period.
#[test]
fn a_release_trickled_a_byte_at_a_time_is_cut_at_the_minimum_pace() {
    let Some(repo) = require_apt_repo(None) else { return };
    repo.serve_trickle("/dists/stable/InRelease");
    let started = std::time::Instant::now();
    lock_is_refused(&repo, &["InRelease", "slower than the 16 KiB/s every download must keep after its first 30 s"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// An unsatisfiable dependency names the package, the chain that needs it and why.
#[test]
fn an_unsatisfiable_dependency_names_the_chain() {
    let Some(mut repo) = require_apt_repo(None) else { return };
    let broken = repo.deb_with_fields("python3.11-minimal", &[("Depends", "libc6 (>= 2.36), no-such-lib (>= 1)")]);
    repo.add_deb(&broken);
    repo.reindex();
    let s = project(&repo, &["python3-minimal"]);
    let out = s.galley(&["lock"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("cannot install `no-such-lib`: python3-minimal -> python3.11-minimal needs it (Depends: no-such-lib (>= 1)); no package `no-such-lib` is in the indices"),
        "{all}"
    );
}

/// A `.deb` changed in the store after it was fetched (disk corruption, a hand edit) is not
/// unpacked: it is fetched again and the image is the locked one.
#[test]
fn a_stored_deb_that_no_longer_matches_is_fetched_again() {
    let Some(repo) = require_apt_repo(None) else { return };
    let s = project(&repo, &["python3-minimal"]);
    ok(&s.galley(&["lock"]), "galley lock");
    let pinned = repo.index_field("python3-minimal", "SHA256").unwrap();
    let blob = s.home.path().join("store/blobs/sha256").join(&pinned);
    std::fs::write(&blob, b"not a package").unwrap();
    std::fs::remove_dir_all(s.home.path().join("cache/layers")).unwrap();
    repo.clear_requests();
    let shown = ok(&s.galley(&["build", "--locked"]), "galley build --locked");
    assert!(shown.contains(&manifest_digest(s.path())), "{shown}");
    let pool: Vec<String> = repo.requests().into_iter().filter(|r| r.starts_with("/pool/")).collect();
    assert_eq!(pool.len(), 1, "only the changed package is fetched again: {pool:?}");
    assert_eq!(support::apt_repo::sha256_file(&blob), pinned);
}

#[test]
fn adding_one_package_builds_only_its_layer_and_lock_check_stays_offline() {
    let Some(repo) = require_apt_repo(None) else { return };
    let s = project(&repo, &["python3-minimal"]);
    ok(&s.galley(&["lock"]), "galley lock");
    repo.clear_requests();
    ok(&s.galley(&["lock", "--check"]), "galley lock --check");
    let again = s.galley(&["-v", "build", "--locked"]);
    let shown = ok(&again, "galley build --locked");
    assert!(shown.contains("package python3-minimal cached") && !shown.contains(" built"), "{shown}");
    assert_eq!(repo.requests(), Vec::<String>::new(), "lock --check and a cached build asked the archive");

    s.write("galley.ncl", &config("deb", &repo, &["python3-minimal", "netbase"], ""));
    let stale = s.galley(&["lock", "--check"]);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    assert!(text(&stale).contains("images.py.debian.requested"), "{}", text(&stale));
    assert_eq!(repo.requests(), Vec::<String>::new(), "lock --check asked the archive");

    let built = ok(&s.galley(&["-v", "build"]), "galley build");
    let rebuilt: Vec<&str> = built.lines().filter(|l| l.trim_end().ends_with("built")).map(str::trim).collect();
    assert_eq!(rebuilt.len(), 1, "{built}");
    assert!(rebuilt[0].starts_with("package netbase"), "{built}");
    let pool: Vec<String> = repo.requests().into_iter().filter(|r| r.starts_with("/pool/")).collect();
    assert_eq!(pool.len(), 1, "only netbase is fetched: {pool:?}");
}

#[test]
fn a_package_bump_is_one_changed_line_of_the_lock() {
    let Some(mut repo) = require_apt_repo(None) else { return };
    let s = project(&repo, &["python3-minimal"]);
    ok(&s.galley(&["lock"]), "galley lock");
    let before = std::fs::read_to_string(s.path().join("galley.lock")).unwrap();
    let bumped = repo.deb_with_version("libmd0", "1.0.4-2+galley1");
    repo.add_deb(&bumped);
    repo.reindex();
    // Without --update the pinned closure stays.
    ok(&s.galley(&["lock"]), "galley lock");
    assert_eq!(std::fs::read_to_string(s.path().join("galley.lock")).unwrap(), before);
    let out = s.galley(&["-v", "lock", "--update", "py"]);
    let shown = ok(&out, "galley lock --update py");
    assert!(shown.contains("images.py: package libmd0 1.0.4-2 -> 1.0.4-2+galley1"), "{shown}");
    let after = std::fs::read_to_string(s.path().join("galley.lock")).unwrap();
    let packages = |t: &str| -> BTreeSet<String> { t.lines().filter(|l| l.contains(" pool/")).map(str::to_owned).collect() };
    let (old, new) = (packages(&before), packages(&after));
    let removed: Vec<_> = old.difference(&new).collect();
    let added: Vec<_> = new.difference(&old).collect();
    assert_eq!((removed.len(), added.len()), (1, 1), "{removed:?} {added:?}");
    assert!(removed[0].contains("\"libmd0\": \"1.0.4-2 ") && added[0].contains("\"libmd0\": \"1.0.4-2+galley1 "), "{added:?}");
}

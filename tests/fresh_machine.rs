//! Set-up proven on a fresh machine: `scripts/setup.sh` runs in an empty Debian 12 root
//! (`mmdebstrap --variant=minbase` from the host's own Debian mirror), then `galley doctor` there
//! must pass every check that can be made in a chroot. CI passing only because its machine
//! already had a package is the failure this guards.
//!
//! The root shares the host's kernel and network namespace: only `--network none` containers run
//! in it (doctor's probe), no podman network is created, and no process may be left running there.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

/// Every check `galley doctor` makes without a project, by its stable id.
const DOCTOR_CHECKS: &[&str] = &[
    "podman", "oci-runtime", "netavark", "firewall", "aardvark-dns", "network-backend", "cgroups", "rlimits", "subids", "userns", "sandbox-ids",
    "buildah", "home",
];

/// Checks that cannot pass here, and why: the test runs as root, so builds are rootful and
/// doctor has no invoking user's subordinate ids to look at.
const EXPECTED_SKIPS: &[(&str, &str)] = &[("subids", "root")];

/// Programs galley's tests and scripts run (besides what doctor checks), from the tools they
/// gate on: every one must be on PATH after set-up.
const TEST_TOOLS: &[&str] = &[
    "skopeo", "umoci", "oci-image-tool", "docker-registry", "busybox", "git", "python3", "kubernetes-validate", "runc", "useradd",
    "runuser", "newuidmap", "newgidmap", "file", "cc", "mmdebstrap", "chroot", "mount", "dpkg-scanpackages", "apt-ftparchive", "gpg", "gpgv",
    "xz", "zstd",
];

/// The Debian release setup.sh targets.
const SUITE: &str = "bookworm";

/// PATH inside the root: Debian's default for root, with /usr/local/bin where pip puts scripts.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn setup_sh_makes_an_empty_debian_12_root_pass_galley_doctor() {
    if !is_root() || !support::require_tool("mmdebstrap") {
        return;
    }
    let mirrors = host_debian_sources();
    if mirrors.is_empty() {
        support::skip(&format!("the host's apt has no `deb` source for {SUITE} under /etc/apt to build the root from"));
        return;
    }
    let mut fresh = FreshRoot::create(&mirrors);
    let root = fresh.root.clone();

    // As a normal user on the empty machine, setup only says what is missing.
    let out = fresh.chroot(Some("65534:65534"), &["bash", "/galley/scripts/setup.sh"]);
    assert_eq!(out.status.code(), Some(1), "setup.sh as nobody: {}", both(&out));
    let err = support::stderr(&out);
    assert!(err.contains("setup: missing Debian packages: podman buildah"), "{err}");
    assert!(err.contains("  help: run as root"), "{err}");

    let started = Instant::now();
    let out = fresh.chroot(None, &["bash", "/galley/scripts/setup.sh"]);
    eprintln!("fresh machine: setup.sh took {:.0?}", started.elapsed());
    assert!(out.status.success(), "setup.sh failed on an empty {SUITE} root: {}", both(&out));
    assert!(support::stderr(&out).contains("setup: installing "), "setup.sh installed nothing: {}", both(&out));
    // The Debian packages the APT tests serve from loopback were fetched there: every name of
    // the python3-minimal closure setup.sh recorded has its .deb.
    let debs = root.join("var/cache/galley/test-debs");
    let closure = fs::read_to_string(debs.join("python3-minimal.closure")).unwrap_or_else(|e| panic!("no closure recorded: {e}: {}", both(&out)));
    let fetched: Vec<String> = fs::read_dir(&debs).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(closure.lines().count() >= 5, "closure: {closure}");
    for name in closure.lines() {
        assert!(fetched.iter().any(|f| f.starts_with(&format!("{name}_")) && f.ends_with(".deb")), "no .deb of {name} in {fetched:?}");
    }

    // Idempotent: a second run finds everything and installs nothing.
    let again = fresh.chroot(None, &["bash", "/galley/scripts/setup.sh"]);
    assert!(again.status.success(), "second setup.sh run failed: {}", both(&again));
    assert!(!support::stderr(&again).contains("installing"), "second setup.sh run installed again: {}", both(&again));

    let script = r#"for t in "$@"; do command -v "$t" >/dev/null || echo "$t"; done"#;
    let out = fresh.chroot(None, &[&["bash", "-c", script, "-"], TEST_TOOLS].concat());
    assert_eq!(support::stdout(&out), "", "not on PATH after setup.sh (one a line): {}", both(&out));
    for probe in [&["python3", "-c", "import pytest, pytest_lsp"][..], &["kubernetes-validate", "--version"]] {
        let out = fresh.chroot(None, probe);
        assert!(out.status.success(), "{probe:?} after setup.sh: {}", both(&out));
    }

    fs::create_dir_all(root.join("galley/project")).unwrap();
    let started = Instant::now();
    let out = fresh.chroot(None, &["galley", "-C", "/galley/project", "doctor", "--format", "json"]);
    eprintln!("fresh machine: galley doctor took {:.0?}", started.elapsed());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor json: {e}: {}", both(&out)));
    let checks = report["checks"].as_array().unwrap_or_else(|| panic!("no checks: {report}"));
    let ids: BTreeSet<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, DOCTOR_CHECKS.iter().copied().collect(), "doctor's checks: {report}");
    let with = |status: &'static str| checks.iter().filter(move |c| c["status"] == status);
    let failed: Vec<String> = with("fail").map(|c| format!("{}: {} (help: {})", c["id"], c["detail"], c["help"])).collect();
    assert!(failed.is_empty(), "doctor fails after setup.sh on an empty root:\n{}", failed.join("\n"));
    let skipped: Vec<(&str, &str)> = with("skip").map(|c| (c["id"].as_str().unwrap(), c["detail"].as_str().unwrap())).collect();
    assert_eq!(skipped.len(), EXPECTED_SKIPS.len(), "skipped: {skipped:?}");
    for ((id, detail), (want_id, because)) in skipped.iter().zip(EXPECTED_SKIPS) {
        assert!(id == want_id && detail.contains(because), "skipped {id} ({detail}), expected {want_id} ({because})");
    }
    assert_eq!(report["summary"]["pass"], DOCTOR_CHECKS.len() - EXPECTED_SKIPS.len(), "{report}");
    assert_eq!(out.status.code(), Some(0), "doctor exit status: {}", both(&out));

    // Nothing set up may keep running there: it would serve on the host's network.
    assert_eq!(processes_in(&root), vec![], "processes left running in the root");
    let dir = fresh.dir().to_owned();
    let left = fresh.tear_down();
    assert!(left.is_empty(), "mounts left under {}: {left:?}", dir.display());
    drop(fresh);
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn host_apt_sources_give_the_suites_deb_lines() {
    let deb822 = "Types: deb deb-src\n# a comment\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates trixie\n\
                  Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                  Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
                  Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n";
    let one_line = "# deb http://commented.example/debian bookworm main\n\
                    deb [signed-by=/k.gpg arch=amd64] http://sec.example/debian-security bookworm-security main\n\
                    deb http://old.example/debian bullseye main\n";
    assert_eq!(
        deb822_sources(deb822).into_iter().chain(one_line_sources(one_line)).collect::<Vec<_>>(),
        [
            "deb http://deb.example/debian bookworm main contrib",
            "deb http://deb.example/debian bookworm-updates main contrib",
            "deb http://sec.example/debian-security bookworm-security main",
        ]
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        support::skip("the fresh machine test needs root (mmdebstrap, mount, chroot)");
    }
    root
}

/// The host's apt sources for [`SUITE`] and its updates and security suites, as one-line `deb`
/// entries without options (the root's debian-archive-keyring verifies them).
fn host_debian_sources() -> Vec<String> {
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    let mut lines = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => lines.extend(deb822_sources(&text)),
            Some("list") => lines.extend(one_line_sources(&text)),
            _ => {}
        }
    }
    lines
}

fn deb822_sources(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned()))
        };
        let (Some(types), Some(uris), Some(suites), Some(components)) = (field("Types"), field("URIs"), field("Suites"), field("Components")) else {
            continue;
        };
        if !types.split_whitespace().any(|t| t == "deb") || field("Enabled").is_some_and(|e| e == "no") {
            continue;
        }
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace().filter(|s| is_our_suite(s)) {
                lines.push(format!("deb {uri} {suite} {components}"));
            }
        }
    }
    lines
}

fn one_line_sources(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("deb ")?.trim_start();
            let rest = if rest.starts_with('[') { rest.split_once(']')?.1 } else { rest };
            let mut words = rest.split_whitespace();
            let (uri, suite) = (words.next()?, words.next()?);
            let components: Vec<&str> = words.collect();
            is_our_suite(suite).then(|| format!("deb {uri} {suite} {}", components.join(" ")))
        })
        .collect()
}

fn is_our_suite(suite: &str) -> bool {
    suite == SUITE || suite.strip_prefix(SUITE).is_some_and(|s| s.starts_with('-'))
}

/// An empty Debian root in a temporary directory, with the repository's scripts, the galley
/// under test and the host's /proc, /sys and /dev. Dropping it unmounts everything (lazily),
/// stops what still runs there, and removes the directory, but only once nothing is mounted
/// under it: removing a root with /dev still bound would delete the host's device nodes.
struct FreshRoot {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    torn_down: bool,
}

impl FreshRoot {
    fn create(mirrors: &[String]) -> FreshRoot {
        let dir = tempfile::Builder::new().prefix("galley-fresh-").tempdir().unwrap();
        let root = dir.path().join("root");
        let mut fresh = FreshRoot { dir: Some(dir), root: root.clone(), torn_down: false };
        let started = Instant::now();
        let mut cmd = Command::new("mmdebstrap");
        cmd.args(["--variant=minbase", "--mode=root", "--quiet", SUITE]).arg(&root).args(mirrors);
        let out = cmd.output().expect("mmdebstrap runs");
        assert!(out.status.success(), "mmdebstrap failed: {}", both(&out));
        eprintln!("fresh machine: mmdebstrap --variant=minbase took {:.0?}", started.elapsed());
        // apt downloads as _apt, which must be able to walk from /.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();

        copy_dir(&support::repo().join("scripts"), &root.join("galley/scripts"));
        fs::copy(env!("CARGO_BIN_EXE_galley"), root.join("usr/local/bin/galley")).unwrap();
        fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).unwrap();
        // CAs the host's operator added (a TLS-inspecting egress proxy's): without them pip cannot
        // reach PyPI from here. They take effect when setup.sh installs ca-certificates. pip
        // itself needs no config: Debian's pip reads the system bundle the host's pip.conf names.
        let local_cas = Path::new("/usr/local/share/ca-certificates");
        if local_cas.is_dir() {
            copy_dir(local_cas, &root.join("usr/local/share/ca-certificates"));
        }

        // pivot_root, which runc uses, needs the root to be a mount point.
        fresh.mount(&["--bind", path(&root), path(&root)]);
        fresh.mount(&["--make-private", path(&root)]);
        fresh.mount(&["-t", "proc", "proc", path(&root.join("proc"))]);
        for dir in ["sys", "dev"] {
            let target = root.join(dir);
            fresh.mount(&["--rbind", &format!("/{dir}"), path(&target)]);
            fresh.mount(&["--make-rslave", path(&target)]);
        }
        fresh.mount(&["-t", "tmpfs", "-o", "mode=755", "tmpfs", path(&root.join("run"))]);
        fresh
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory is there until drop").path()
    }

    fn mount(&mut self, args: &[&str]) {
        let out = Command::new("mount").args(args).output().expect("mount runs");
        assert!(out.status.success(), "mount {args:?}: {}", both(&out));
    }

    /// `argv` inside the root with a clean environment, as `user` (uid:gid) or root.
    fn chroot(&self, user: Option<&str>, argv: &[&str]) -> Output {
        let mut cmd = Command::new("chroot");
        if let Some(user) = user {
            cmd.arg(format!("--userspec={user}"));
        }
        let home = if user.is_some() { "/tmp" } else { "/root" };
        cmd.arg(&self.root).args(["/usr/bin/env", "-i", &format!("PATH={ROOT_PATH}"), &format!("HOME={home}"), "LANG=C.UTF-8"]);
        cmd.args(argv).current_dir("/").output().expect("chroot runs")
    }

    /// Stop what still runs in the root, unmount everything under the directory, deepest first,
    /// and return the mount points still there.
    fn tear_down(&mut self) -> Vec<String> {
        self.torn_down = true;
        for (pid, _) in processes_in(&self.root) {
            // SAFETY: kill has no memory preconditions; the process runs inside this test's root.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let mut points = mounts_under(self.dir());
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in &points {
            let c = std::ffi::CString::new(point.as_str()).unwrap();
            // SAFETY: c is a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        mounts_under(self.dir())
    }
}

impl Drop for FreshRoot {
    fn drop(&mut self) {
        let left = if self.torn_down { mounts_under(self.dir()) } else { self.tear_down() };
        if !left.is_empty() {
            eprintln!("error: mounts left under {}, not removing it: {left:?}", self.dir().display());
            let _ = self.dir.take().map(tempfile::TempDir::keep);
        }
    }
}

/// Mount points at or under `dir` in this process's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts.lines().filter_map(|l| l.split(' ').nth(1)).filter(|p| p.starts_with(&prefix)).map(str::to_owned).collect()
}

/// The pid and command line of each process whose root directory is `root`.
fn processes_in(root: &Path) -> Vec<(i32, String)> {
    let entries = fs::read_dir("/proc").unwrap().flatten();
    entries
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<i32>().ok()?, e.path())))
        .filter(|(_, p)| fs::read_link(p.join("root")).is_ok_and(|r| r == root))
        .map(|(pid, p)| (pid, fs::read_to_string(p.join("cmdline")).unwrap_or_default().replace('\0', " ")))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("the temporary path is UTF-8")
}

fn both(o: &Output) -> String {
    format!("{}\n{}", support::stdout(o), support::stderr(o))
}

//! A signed APT repository of real Debian packages, served over HTTP on 127.0.0.1 from a thread
//! of the test process, for the tests of declarative Debian packages.
//!
//! The .debs are the ones `scripts/setup.sh` fetched once with `apt-get download` (the
//! python3-minimal closure and a few packages with Provides, alternatives and `Architecture:
//! all`); [`test_debs_dir`] says where. `tests/support/apt-repo.sh` indexes them with
//! dpkg-scanpackages and apt-ftparchive and signs the Release with a key generated for this
//! repository alone. The server records every request, so a test can assert what a client fetched
//! and how often, and the attack helpers change the served files after signing the way a hostile
//! mirror would.
//!
//! [`AptRepo::apt_simulate`] asks APT itself what it would install from this repository, in a
//! scratch configuration of its own: it reads no host APT configuration, sources, keys or dpkg
//! status, writes nothing outside a temporary folder, and talks only to this loopback server.
#![allow(dead_code)]

mod apt;
mod debs;
mod server;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use apt::AptScratch;
pub use apt::parse_inst_lines;
// Only tests/apt_repo.rs reads control fields; other test binaries compile this module too.
#[allow(unused_imports)]
pub use debs::deb_field;
use debs::{find_deb, find_deb_under, parse_control, render_control, set_fields};
use server::{Override, Server};
pub use server::Request;

/// The programs the fixture runs: apt-repo.sh's tools, gpgv for checks and apt-get for
/// [`AptRepo::apt_simulate`].
pub const TOOLS: &[&str] = &["bash", "dpkg", "dpkg-deb", "dpkg-scanpackages", "apt-ftparchive", "apt-get", "gpg", "gpgv", "gzip", "xz"];

/// The suite, component and Release origin every repository of the fixture has.
pub const SUITE: &str = "stable";
pub const COMPONENT: &str = "main";
pub const ORIGIN: &str = "galley-test";

/// Name of the file in [`test_debs_dir`] listing the python3-minimal closure as APT computed it
/// on the machine that fetched the packages, one name a line.
const CLOSURE_FILE: &str = "python3-minimal.closure";

/// Where `scripts/setup.sh` put the test packages: `GALLEY_TEST_DEBS`, else the same default the
/// script takes (`/var/cache/galley/test-debs` as root, else the user's cache folder).
pub fn test_debs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(galley::env_vars::GALLEY_TEST_DEBS).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/galley/test-debs");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    cache.join("galley/test-debs")
}

/// The python3-minimal closure `scripts/setup.sh` fetched, sorted, or `None` when it has not run.
pub fn cached_closure() -> Option<Vec<String>> {
    let text = std::fs::read_to_string(test_debs_dir().join(CLOSURE_FILE)).ok()?;
    let mut names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    names.sort();
    Some(names)
}

/// The cached .deb of package `name`, if setup.sh fetched it.
pub fn cached_deb(name: &str) -> Option<PathBuf> {
    find_deb(&test_debs_dir(), name)
}

/// A repository from the cached packages (all of them, or those named), or `None` after
/// [`super::skip`] (a failure under `GALLEY_TEST_REQUIRE_RUNTIME=1`) when a tool or a cached
/// package is missing.
pub fn require_apt_repo(packages: Option<&[&str]>) -> Option<AptRepo> {
    if !super::require_tools(TOOLS) {
        return None;
    }
    let dir = test_debs_dir();
    let Some(closure) = cached_closure() else {
        super::skip(&format!("the test packages are not in {} (run scripts/setup.sh as root)", dir.display()));
        return None;
    };
    let wanted: Vec<String> = match packages {
        Some(names) => names.iter().map(|n| n.to_string()).collect(),
        None => closure,
    };
    let missing: Vec<&str> = wanted.iter().map(String::as_str).filter(|n| cached_deb(n).is_none()).collect();
    if !missing.is_empty() {
        super::skip(&format!("{} lacks {} (run scripts/setup.sh as root)", dir.display(), missing.join(", ")));
        return None;
    }
    Some(AptRepo::build(packages))
}

/// A signed APT repository in a temporary folder, served on 127.0.0.1 until dropped.
pub struct AptRepo {
    /// First, so it stops before the folder it serves is removed.
    server: Server,
    /// Holds `repo/` (what is served), `gnupg/` (the signing key) and scratch folders.
    tmp: tempfile::TempDir,
    arch: String,
    added: Vec<PathBuf>,
    valid_until: Option<u64>,
}

/// A copy of everything a repository served at one moment, for [`AptRepo::restore`].
pub struct RepoSnapshot {
    dir: tempfile::TempDir,
}

impl AptRepo {
    /// Builds a repository from the cached packages, every one of them (`None`: the
    /// python3-minimal closure and the extras setup.sh fetched) or those named, and serves it. Panics when a tool or package is missing: see [`require_apt_repo`].
    pub fn build(packages: Option<&[&str]>) -> AptRepo {
        let tmp = tempfile::Builder::new().prefix("galley-apt-").tempdir().expect("temp dir");
        let arch = host_arch();
        let mut args: Vec<String> = vec![];
        for name in packages.unwrap_or_default() {
            args.push("--package".into());
            args.push(name.to_string());
        }
        let repo = tmp.path().join("repo");
        let key_dir = tmp.path().join("gnupg");
        args.extend([repo.display().to_string(), test_debs_dir().display().to_string()]);
        run_script(&arch, &key_dir, &args);
        let server = Server::start(repo);
        AptRepo { server, tmp, arch, added: vec![], valid_until: None }
    }

    /// `http://127.0.0.1:PORT/`, the repository's root (what a sources.list line names).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.server.port)
    }

    /// The one-line APT source of this repository, trusted by [`AptRepo::keyring`] alone.
    pub fn source_line(&self) -> String {
        format!("deb [signed-by={}] {} {} {}", self.keyring().display(), self.url(), SUITE, COMPONENT)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn suite(&self) -> &str {
        SUITE
    }

    pub fn component(&self) -> &str {
        COMPONENT
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The served folder (`pool/`, `dists/`).
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    /// The repository's public key as a binary OpenPGP keyring (what `signed-by` takes). It is
    /// outside the served folder and no helper changes it.
    pub fn keyring(&self) -> PathBuf {
        self.tmp.path().join("archive-keyring.gpg")
    }

    /// The same key, ASCII-armored.
    pub fn keyring_armored(&self) -> PathBuf {
        self.tmp.path().join("archive-keyring.asc")
    }

    /// `dists/SUITE` in the served folder.
    pub fn dists(&self) -> PathBuf {
        self.dir().join("dists").join(SUITE)
    }

    pub fn release(&self) -> PathBuf {
        self.dists().join("Release")
    }

    pub fn in_release(&self) -> PathBuf {
        self.dists().join("InRelease")
    }

    pub fn release_gpg(&self) -> PathBuf {
        self.dists().join("Release.gpg")
    }

    /// `dists/SUITE/COMPONENT/binary-ARCH/Packages` (`.gz` and `.xz` beside it).
    pub fn packages_index(&self) -> PathBuf {
        self.dists().join(COMPONENT).join(format!("binary-{}", self.arch)).join("Packages")
    }

    /// The path of a file of the repository relative to its root, as Release and Packages name
    /// files and as the server is asked for it after `url()`.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(self.dir()).expect("a path in the repository").display().to_string()
    }

    /// The served .deb of package `name` (in `pool/`). Panics when the repository has none.
    pub fn deb_path(&self, name: &str) -> PathBuf {
        find_deb_under(&self.dir().join("pool"), name).unwrap_or_else(|| panic!("the repository has no package {name}"))
    }

    /// Every path the server was asked for (GET and HEAD), in order, e.g. `/dists/stable/InRelease`.
    pub fn requests(&self) -> Vec<String> {
        self.server.log.lock().unwrap().iter().map(|r| r.path.clone()).collect()
    }

    /// Every request with its method and the status answered.
    pub fn request_log(&self) -> Vec<Request> {
        self.server.log.lock().unwrap().clone()
    }

    /// How many requests asked for `path` (as in [`AptRepo::requests`]).
    pub fn request_count(&self, path: &str) -> usize {
        self.server.log.lock().unwrap().iter().filter(|r| r.path == path).count()
    }

    pub fn clear_requests(&self) {
        self.server.log.lock().unwrap().clear();
    }

    /// Attack: a mirror serves a changed .deb. Flips one byte in the middle of package `name`'s
    /// pool file (its member data), keeping its size, so only its hash tells.
    pub fn tamper_deb(&self, name: &str) {
        let path = self.deb_path(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }

    /// Attack: a mirror serves a Packages index that the signed Release does not vouch for. Changes
    /// one hex digit of the first `SHA256:` field of Packages (as a mirror pointing a package at
    /// its own .deb would), keeping the size, and writes `.gz` and `.xz` again from it, after
    /// signing: the Release's hashes of all three no longer match, its signature still verifies.
    pub fn tamper_index(&self) {
        let path = self.packages_index();
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.find("\nSHA256: ").expect("Packages has a SHA256 field") + "\nSHA256: ".len();
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, &bytes).unwrap();
        compress(&path);
    }

    /// Attack: a valid signature by a key the client does not trust. Signs Release again, as
    /// InRelease and Release.gpg, with a new key; returns that key's keyring (outside the served
    /// folder). [`AptRepo::keyring`] is unchanged.
    pub fn resign_with_other_key(&self) -> PathBuf {
        let keyring = self.tmp.path().join("other-keyring.gpg");
        let args =
            ["--sign-only".to_owned(), "--keyring".into(), keyring.display().to_string(), self.dir().display().to_string()];
        run_script(&self.arch, &self.tmp.path().join("other-gnupg"), &args);
        keyring
    }

    /// Attack: an unsigned repository. Removes InRelease and Release.gpg; Release stays.
    pub fn drop_signature(&self) {
        std::fs::remove_file(self.in_release()).unwrap();
        std::fs::remove_file(self.release_gpg()).unwrap();
    }

    /// Attack: a server that never stops sending. From now on `path` (as in
    /// [`AptRepo::requests`], e.g. `/dists/stable/InRelease`) is answered with a Content-Length of
    /// 1 TiB and zeros for as long as the client reads: a client without a byte budget never ends.
    pub fn serve_endless(&self, path: &str) {
        self.server.overrides.lock().unwrap().insert(path.to_owned(), Override::Endless);
    }

    /// Attack: a server that sends too slowly to finish, each byte well within any read timeout.
    /// From now on `path` is answered with a Content-Length of 1 MiB and one byte every 100 ms.
    pub fn serve_trickle(&self, path: &str) {
        self.server.overrides.lock().unwrap().insert(path.to_owned(), Override::Trickle);
    }

    /// From now on `path` is answered with HTTP status `status` (a mirror that fails, say 500).
    pub fn serve_status(&self, path: &str, status: u16) {
        self.server.overrides.lock().unwrap().insert(path.to_owned(), Override::Status(status));
    }

    /// `path` is served from the folder again.
    pub fn serve_normally(&self, path: &str) {
        self.server.overrides.lock().unwrap().remove(path);
    }

    /// Queues a .deb for the next [`AptRepo::reindex`], which puts it in the pool in place of
    /// any other version of the same package and architecture.
    pub fn add_deb(&mut self, path: &Path) {
        self.added.push(path.to_owned());
    }

    /// The Valid-Until date (seconds since the epoch) that the next [`AptRepo::reindex`] writes
    /// into Release, or none. Attack: a date in the past makes a validly signed but expired Release,
    /// as a mirror freezing its clients on old metadata serves.
    pub fn set_valid_until(&mut self, epoch: Option<u64>) {
        self.valid_until = epoch;
    }

    /// A copy of what the repository serves now (pool and dists).
    pub fn snapshot(&self) -> RepoSnapshot {
        let dir = tempfile::tempdir_in(self.tmp.path()).unwrap();
        check(Command::new("cp").arg("-a").arg(self.dir()).arg(dir.path().join("repo")), "cp -a");
        RepoSnapshot { dir }
    }

    /// Attack: a rollback. Serves a snapshot taken earlier again, its old Release still validly
    /// signed by the repository's key, in place of what the repository serves now.
    pub fn restore(&self, snapshot: &RepoSnapshot) {
        let served = self.dir();
        let aside = self.tmp.path().join("replaced");
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&served, &aside).unwrap();
        check(Command::new("cp").arg("-a").arg(snapshot.dir.path().join("repo")).arg(&served), "cp -a");
        std::fs::remove_dir_all(&aside).unwrap();
    }

    /// Indexes the pool again (with what [`AptRepo::add_deb`] queued) and signs the new Release
    /// with the repository's own key, as an archive publishing an update does.
    pub fn reindex(&mut self) {
        let mut args = vec![self.dir().display().to_string()];
        if let Some(epoch) = self.valid_until {
            args.extend(["--valid-until".to_owned(), epoch.to_string()]);
        }
        let staging = tempfile::tempdir_in(self.tmp.path()).unwrap();
        if !self.added.is_empty() {
            for deb in self.added.drain(..) {
                std::fs::copy(&deb, staging.path().join(deb.file_name().unwrap())).unwrap();
            }
            args.push(staging.path().display().to_string());
        }
        run_script(&self.arch, &self.tmp.path().join("gnupg"), &args);
    }

    /// A real .deb of package `name` at `version`: see [`AptRepo::deb_with_fields`]. For version
    /// bumps with [`AptRepo::add_deb`].
    pub fn deb_with_version(&self, name: &str, version: &str) -> PathBuf {
        self.deb_with_fields(name, &[("Version", version)])
    }

    /// A .deb made from the cached package `name`: unpacked with `dpkg-deb -R`, each of `fields`
    /// set in its control file (replaced where present, else added; an empty value removes the
    /// field), packed again with `dpkg-deb -b`. For version bumps, new or unsatisfiable
    /// dependencies, new Provides, with [`AptRepo::add_deb`].
    pub fn deb_with_fields(&self, name: &str, fields: &[(&str, &str)]) -> PathBuf {
        let src = cached_deb(name).unwrap_or_else(|| panic!("no cached package {name}"));
        let work = tempfile::tempdir_in(self.tmp.path()).unwrap();
        let tree = work.path().join("tree");
        check(Command::new("dpkg-deb").arg("-R").arg(&src).arg(&tree), "dpkg-deb -R");
        let control = tree.join("DEBIAN/control");
        let mut stanza = parse_control(&std::fs::read_to_string(&control).unwrap());
        set_fields(&mut stanza, fields);
        std::fs::write(&control, render_control(&stanza)).unwrap();
        self.pack(&tree, &stanza)
    }

    /// A new .deb from nothing: control `fields` (Package, Version and Architecture needed;
    /// Maintainer and Description get defaults) and `files` (absolute path in the image, contents,
    /// mode) as its data, owned by root. For packages the cache lacks: a file layout, a dependency
    /// chain, a package that replaces another's file.
    pub fn synthetic_deb(&self, fields: &[(&str, &str)], files: &[(&str, &[u8], u32)]) -> PathBuf {
        let work = tempfile::tempdir_in(self.tmp.path()).unwrap();
        let tree = work.path().join("tree");
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        for (path, contents, mode) in files {
            let rel = path.strip_prefix('/').unwrap_or_else(|| panic!("{path} is not absolute"));
            let dest = tree.join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(&dest, contents).unwrap();
            std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
        }
        let mut stanza = vec![
            ("Maintainer".to_owned(), "galley tests <tests@galley.invalid>".to_owned()),
            ("Description".to_owned(), "a package made by a galley test".to_owned()),
        ];
        set_fields(&mut stanza, fields);
        for need in ["Package", "Version", "Architecture"] {
            assert!(stanza.iter().any(|(k, _)| k == need), "synthetic_deb needs a {need} field");
        }
        // dpkg-deb wants Package first.
        stanza.sort_by_key(|(k, _)| k != "Package");
        std::fs::write(tree.join("DEBIAN/control"), render_control(&stanza)).unwrap();
        self.pack(&tree, &stanza)
    }

    /// `dpkg-deb -b` of `tree` into a folder of its own under the fixture's temporary folder, named
    /// as the pool names it.
    fn pack(&self, tree: &Path, stanza: &[(String, String)]) -> PathBuf {
        let get = |k: &str| stanza.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str()).unwrap_or_default();
        let version = get("Version");
        let version = version.split_once(':').map_or(version, |(_, v)| v);
        let out_dir = tempfile::tempdir_in(self.tmp.path()).unwrap().keep();
        let out = out_dir.join(format!("{}_{}_{}.deb", get("Package"), version, get("Architecture")));
        check(Command::new("dpkg-deb").args(["--root-owner-group", "-b"]).arg(tree).arg(&out), "dpkg-deb -b");
        out
    }

    /// The SHA-256 (hex) Release gives for `rel` (a path relative to `dists/SUITE`), if listed.
    pub fn release_sha256(&self, rel: &str) -> Option<String> {
        release_hash(&std::fs::read_to_string(self.release()).unwrap(), rel)
    }

    /// The field `name` of package `package`'s stanza in the served Packages index.
    pub fn index_field(&self, package: &str, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.packages_index()).unwrap();
        stanza_field(&text, package, name)
    }

    /// What APT would install for `packages` from this repository alone: `apt-get update` then
    /// `apt-get install --simulate --no-install-recommends PACKAGES` in a fresh scratch
    /// configuration (see the module doc), as (name, version, arch) from its `Inst` lines.
    /// Panics with APT's output when either step fails.
    pub fn apt_simulate(&self, packages: &[&str]) -> BTreeSet<(String, String, String)> {
        let out = self.apt_simulate_output(packages);
        assert!(out.status.success(), "apt-get install --simulate {packages:?} against {}: {}", self.url(), text(&out));
        parse_inst_lines(&String::from_utf8_lossy(&out.stdout))
    }

    /// As [`AptRepo::apt_simulate`], but APT's output and status whatever they are: the oracle
    /// for a request APT cannot satisfy. A failed `apt-get update` is returned as it is.
    pub fn apt_simulate_output(&self, packages: &[&str]) -> Output {
        let apt = AptScratch::new(self.tmp.path(), &self.arch, &self.source_line());
        let update = apt.update();
        if !update.status.success() {
            return update;
        }
        apt.run(&[&["install", "--simulate", "--no-install-recommends"], packages].concat())
    }

    /// `apt-get update` in a fresh scratch configuration trusting [`AptRepo::keyring`]: what APT
    /// itself says of this repository as it is served now (after an attack helper, say).
    pub fn apt_update(&self) -> Output {
        AptScratch::new(self.tmp.path(), &self.arch, &self.source_line()).update()
    }
}

/// The hex SHA-256 of `rel` in the `SHA256:` section of a Release file.
pub fn release_hash(release: &str, rel: &str) -> Option<String> {
    let mut in_sha256 = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_sha256 = line.trim_end() == "SHA256:";
            continue;
        }
        let mut parts = line.split_whitespace();
        if let (true, Some(hash), Some(_size), Some(path)) = (in_sha256, parts.next(), parts.next(), parts.next()) {
            if path == rel {
                return Some(hash.to_owned());
            }
        }
    }
    None
}

/// Field `name` of the stanza of `package` in a Packages index.
pub fn stanza_field(index: &str, package: &str, name: &str) -> Option<String> {
    let stanza = index.split("\n\n").find(|s| s.lines().any(|l| l == format!("Package: {package}")))?;
    stanza.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))))
}

/// `gpgv --keyring KEYRING FILES...`, as a client checking a signature would.
pub fn gpgv(keyring: &Path, files: &[&Path]) -> Output {
    Command::new("gpgv").arg("--keyring").arg(keyring).args(files).env("LC_ALL", "C").output().expect("gpgv runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn check(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", text(&out));
}

fn host_arch() -> String {
    let out = Command::new("dpkg").arg("--print-architecture").output().expect("dpkg runs");
    assert!(out.status.success(), "dpkg --print-architecture: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `path.gz` and `path.xz` from `path`, as apt-repo.sh does.
fn compress(path: &Path) {
    let gz = std::fs::File::create(path.with_extension("gz")).unwrap();
    check(Command::new("gzip").args(["-9nc"]).arg(path).stdout(gz), "gzip");
    let xz = std::fs::File::create(path.with_extension("xz")).unwrap();
    check(Command::new("xz").args(["-9c"]).arg(path).stdout(xz), "xz");
}

fn run_script(arch: &str, key_dir: &Path, args: &[String]) {
    let script = super::repo().join("tests/support/apt-repo.sh");
    let keyring_given = args.iter().any(|a| a == "--keyring");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).args(["--suite", SUITE, "--component", COMPONENT, "--arch", arch]).arg("--key-dir").arg(key_dir);
    if !keyring_given {
        // The trusted key lives beside the served folder, not in it.
        cmd.arg("--keyring").arg(key_dir.parent().unwrap().join("archive-keyring.gpg"));
    }
    check(cmd.args(args), "tests/support/apt-repo.sh");
}

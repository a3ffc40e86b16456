//! Helpers shared by the integration tests: the galley binary, temporary projects and homes.
#![allow(dead_code)]

pub mod apt_repo;
pub mod registry;
pub mod runner;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary project directory with its own GALLEY_HOME.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap(), home: tempfile::tempdir().unwrap() }
    }

    /// A project holding `config` as galley.ncl.
    pub fn with_config(config: &str) -> Sandbox {
        let s = Sandbox::new();
        s.write("galley.ncl", config);
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `galley -C <dir> args...` with this sandbox's GALLEY_HOME and colors off.
    pub fn galley(&self, args: &[&str]) -> Output {
        galley_in(self.path(), self.home.path(), args)
    }
}

pub fn galley_in(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_galley"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GALLEY_HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("GALLEY_MASTER_KEY")
        .output()
        .expect("galley runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `git -C dir ARGS` as a fixed test identity (no signing); its trimmed stdout, or a panic that
/// shows what git said.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}{}", stdout(&out), stderr(&out));
    stdout(&out).trim().to_owned()
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether tests must fail instead of skipping when an outside tool is missing: set
/// `GALLEY_TEST_REQUIRE_RUNTIME=1`, as CI does. Unset, or any other value, skips.
pub fn require_runtime() -> bool {
    std::env::var(galley::env_vars::GALLEY_TEST_REQUIRE_RUNTIME).is_ok_and(|v| v == "1")
}

/// A tmpfs of a given size mounted over a test's folder (a small disk), unmounted when dropped,
/// however the test ends (lazily, so a process still inside cannot keep it mounted).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount -o size=`) over `dir`; `None`, the test skipped, where
    /// that cannot be done (mounting needs root).
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("mounting a small tmpfs needs root");
            return None;
        }
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output().expect("mount runs");
        if !out.status.success() {
            skip(&format!("cannot mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Something a test needs is missing: a failure under `GALLEY_TEST_REQUIRE_RUNTIME=1`, else a
/// note; the test then returns.
pub fn skip(why: &str) {
    assert!(!require_runtime(), "{why} (GALLEY_TEST_REQUIRE_RUNTIME=1)");
    eprintln!("note: skipping: {why}");
}

/// Whether `tool` (a program on PATH, or an absolute path) is installed; when it is not,
/// [`skip`] (so a failure under `GALLEY_TEST_REQUIRE_RUNTIME=1`) and return false.
pub fn require_tool(tool: &str) -> bool {
    let found = if tool.starts_with('/') {
        Path::new(tool).is_file()
    } else {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    if !found {
        skip(&format!("{tool} is not installed"));
    }
    found
}

/// Whether every one of `tools` is installed, as [`require_tool`].
pub fn require_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| require_tool(t))
}

/// podman and buildah, which every test of the runner drives.
pub fn runtime_available() -> bool {
    require_tools(&["podman", "buildah"])
}

/// A loopback docker-registry, or `None` after [`skip`] when docker-registry is not installed.
pub fn require_registry() -> Option<registry::Registry> {
    let reg = registry::Registry::start();
    if reg.is_none() {
        skip("docker-registry is not installed");
    }
    reg
}

/// `len` bytes that do not compress (xorshift), for files that must take their full size.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

//! Helpers shared by the `galley export kube` tests: running the binary, fixtures, parsing YAML.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A value no output may ever contain.
pub const CANARY: &str = "canary-4f1d9c2e-never-in-output";

/// Two sandboxes covering what the examples do not: egress, a bound low port, every kind of
/// secret source, a shared volume.
pub const FULL: &str = r#"{
  name = "kfull",
  images.app = {},
  sandboxes.svc = {
    image = "app",
    user = "1000:1000",
    network = 'egress,
    seccomp = 'default,
    capabilities = ["NET_BIND_SERVICE"],
    env = { ENABLED = "yes", AT = "12:30", EMPTY = "" },
    ports = [{ container = 80, host = 18081 }, { container = 53, host = 18053, protocol = 'udp }],
    secrets = {
      API_TOKEN = { env = "KUBE_TEST_CANARY" },
      CERT = { file = "cert.pem" },
      GH = { command = ["gh", "auth", "token"] },
      STORE_KEY = { store = "STORE_KEY" },
    },
    tmpfs = [{ path = "/tmp", size = "32m" }],
    volumes = [{ name = "shared", path = "/shared" }],
    resources = { memory = "256m", cpus = 0.25, pids = 32 },
  },
  sandboxes.worker = {
    image = "app",
    user = "2000:2000",
    network = 'isolated,
    volumes = [{ name = "shared", path = "/shared", read_only = true }],
  },
}
"#;

pub fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// A temporary project holding `config` as galley.ncl (and a cert.pem holding the canary).
pub fn fixture(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("galley.ncl"), config).unwrap();
    std::fs::write(dir.path().join("cert.pem"), CANARY).unwrap();
    dir
}

fn home() -> PathBuf {
    // One library copy per test process; GALLEY_HOME never points at the user's own.
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path().to_owned()
}

pub fn export(project: &Path, args: &[&str]) -> Output {
    export_env(project, args, &[])
}

pub fn export_env(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_galley"));
    cmd.arg("-C").arg(project).args(["export", "kube"]).args(args);
    cmd.env("GALLEY_HOME", home()).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every document of a YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).unwrap()
}

/// Every file under `dir`, by relative path.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    read_tree(dir).keys().filter(|k| k.ends_with(".yaml")).map(|k| dir.join(k)).collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub use crate::support::skip;

pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

pub fn have_validator() -> bool {
    have("kubernetes-validate", "--version")
}

//! `galley doctor` on the real host, and with one piece made unavailable the honest way: a PATH
//! of symlinks to every program but the hidden one, or a containers.conf that picks another
//! backend or helper directory. Each hidden piece fails exactly its check with the package to
//! install, and `apply` and `build` refuse with the same message before they create anything.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::runner::{text, TestProject};
use support::{require_registry, runtime_available};

/// A directory of symlinks to every program on PATH except `hidden`, to use as PATH.
fn path_without(hidden: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = dir.path().join(&name);
            if hidden.iter().any(|h| name == *h) || link.symlink_metadata().is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), link).unwrap();
        }
    }
    for h in hidden {
        assert!(!dir.path().join(h).exists());
    }
    dir
}

fn doctor(dir: &Path, home: &Path, env: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, Value, Output) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_galley"));
    c.arg("-C").arg(dir).args(["doctor", "--format", "json"]).env("GALLEY_HOME", home).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out.status.code(), v, out)
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "fail").map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

fn check<'v>(v: &'v Value, id: &str) -> &'v Value {
    v["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id}: {v}"))
}

const IDS: [&str; 13] =
    ["podman", "oci-runtime", "netavark", "firewall", "aardvark-dns", "network-backend", "cgroups", "rlimits", "subids", "userns", "sandbox-ids", "buildah", "home"];

#[test]
fn doctor_passes_every_check_on_this_host() {
    if !runtime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (code, v, out) = doctor(dir.path(), &home.path().join("galley"), &[]);
    assert_eq!(code, Some(0), "{}", text(&out));
    assert_eq!(v["summary"]["fail"], 0, "{v}");
    let ids: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, IDS, "outside a project there are no registry checks");
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "title", "status", "detail", "help"]);
        assert!(c["help"].is_null() && !c["detail"].as_str().unwrap().is_empty(), "{c}");
    }
    let pass = v["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "pass").count();
    assert_eq!(v["summary"]["pass"], pass);
    assert!(check(&v, "podman")["detail"].as_str().unwrap().starts_with("podman version "), "{v}");
    assert!(check(&v, "oci-runtime")["detail"].as_str().unwrap().contains("started a container"), "{v}");
    assert_eq!(check(&v, "network-backend")["detail"], "netavark");
    assert!(home.path().join("galley").is_dir(), "GALLEY_HOME is created");

    let out = Command::new(env!("CARGO_BIN_EXE_galley")).arg("-C").arg(dir.path()).arg("doctor").env("GALLEY_HOME", home.path()).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.lines().next().unwrap().starts_with("pass  podman          podman version "), "{shown}");
    assert!(shown.trim_end().ends_with(&format!("{pass} passed, 0 failed, {} skipped", IDS.len() - pass)), "{shown}");
}

/// Hide one program from galley (and the podman it runs); exactly `id` fails, naming `package`.
fn hidden_program_fails_its_check(program: &str, id: &str, package: &str) {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let path = path_without(&[program]);
    let (code, v, out) = doctor(dir.path(), home.path(), &[("PATH", path.path().as_os_str())]);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(failed(&v), [id], "{v}");
    assert_eq!(v["summary"]["fail"], 1);
    let help = check(&v, id)["help"].as_str().unwrap().to_owned();
    assert!(help.contains(&format!("apt-get install {package}")), "{help}");

    let out = Command::new(env!("CARGO_BIN_EXE_galley")).arg("-C").arg(dir.path()).arg("doctor").env("GALLEY_HOME", home.path()).env("PATH", path.path()).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    let line = shown.lines().position(|l| l.starts_with(&format!("fail  {id} "))).unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(shown.lines().nth(line + 1).unwrap(), format!("  help: {help}"));
}

#[test]
fn a_missing_iptables_fails_the_firewall_check() {
    if runtime_available() {
        hidden_program_fails_its_check("iptables", "firewall", "iptables");
    }
}

#[test]
fn a_missing_buildah_fails_the_buildah_check() {
    if runtime_available() {
        hidden_program_fails_its_check("buildah", "buildah", "buildah");
    }
}

#[test]
fn a_missing_podman_fails_the_podman_check_and_skips_what_needs_it() {
    if !runtime_available() {
        return;
    }
    hidden_program_fails_its_check("podman", "podman", "podman");
}

/// Doctor with `conf` as podman's only containers.conf.
fn doctor_with_conf(conf: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("containers.conf");
    std::fs::write(&file, conf).unwrap();
    let (code, v, out) = doctor(dir.path(), &dir.path().join("home"), &[("CONTAINERS_CONF", file.as_os_str())]);
    assert_eq!(code, Some(1), "{}", text(&out));
    v
}

/// A helper directory holding only `programs`, linked from podman's own.
fn helpers_with(programs: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let real: Vec<PathBuf> = ["/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"].iter().map(PathBuf::from).collect();
    for p in programs {
        let found = real.iter().map(|d| d.join(p)).find(|f| f.is_file()).unwrap_or_else(|| panic!("{p} is not installed"));
        std::os::unix::fs::symlink(found, dir.path().join(p)).unwrap();
    }
    let conf = format!("[engine]\nhelper_binaries_dir = [\"{}\"]\n", dir.path().display());
    (dir, conf)
}

#[test]
fn a_cni_backend_fails_the_network_backend_check() {
    if !runtime_available() {
        return;
    }
    let v = doctor_with_conf("[network]\nnetwork_backend = \"cni\"\n");
    assert_eq!(failed(&v), ["network-backend"], "{v}");
    assert!(check(&v, "network-backend")["detail"].as_str().unwrap().contains("'cni'"), "{v}");
    assert!(check(&v, "network-backend")["help"].as_str().unwrap().contains("network_backend = \"netavark\""), "{v}");
}

#[test]
fn netavark_and_aardvark_dns_outside_podmans_helper_dirs_fail_their_checks() {
    if !runtime_available() {
        return;
    }
    let (_keep, conf) = helpers_with(&["aardvark-dns"]);
    let v = doctor_with_conf(&conf);
    assert_eq!(failed(&v), ["netavark"], "{v}");
    assert!(check(&v, "netavark")["help"].as_str().unwrap().contains("apt-get install netavark"), "{v}");
    assert_eq!(check(&v, "network-backend")["status"], "skip", "podman cannot answer without netavark: {v}");

    let (_keep, conf) = helpers_with(&["netavark"]);
    let v = doctor_with_conf(&conf);
    assert_eq!(failed(&v), ["aardvark-dns"], "{v}");
    assert!(check(&v, "aardvark-dns")["help"].as_str().unwrap().contains("apt-get install aardvark-dns"), "{v}");
}

#[test]
fn apply_without_iptables_names_it_before_anything_is_created() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("noipt").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.svc = galley.presets.untrusted & { image = "box", network = 'egress, command = ["/bin/busybox", "sleep", "600"] },"#,
    );
    let path = path_without(&["iptables"]);
    let out = p.galley_cmd(&["apply", "--auto-approve"]).env("PATH", path.path()).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("sandbox `svc` failed") && all.contains("firewall: iptables is not on PATH"), "{all}");
    assert!(all.contains("  help: install iptables (apt-get install iptables)"), "{all}");
    assert!(p.leftovers("ps").is_empty());
    assert!(p.leftovers("network").is_empty());
}

/// `false` from PATH: a program podman can be told is the OCI runtime, which starts nothing.
fn not_a_runtime() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path).map(|d| d.join("false")).find(|p| p.is_file()).expect("false is on PATH")
}

#[test]
fn an_oci_runtime_that_cannot_start_a_container_fails_doctor_and_apply_before_anything_is_created() {
    if !runtime_available() {
        return;
    }
    let broken = not_a_runtime();
    let dir = tempfile::tempdir().unwrap();
    let (code, v, out) = doctor(dir.path(), &dir.path().join("home"), &[("GALLEY_OCI_RUNTIME", broken.as_os_str())]);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(failed(&v), ["oci-runtime"], "{v}");
    let detail = check(&v, "oci-runtime")["detail"].as_str().unwrap().to_owned();
    assert!(detail.starts_with(&format!("{} cannot start a container", broken.display())), "{detail}");

    let p = TestProject::new("badrt").with_image("box");
    p.config(r#"  images.box = {},
  sandboxes.idle = galley.presets.untrusted & { image = "box", command = ["/bin/busybox", "sleep", "600"] },"#);
    let out = p.galley_cmd(&["apply", "--auto-approve"]).env("GALLEY_OCI_RUNTIME", &broken).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains(&format!("error: host check failed: oci-runtime: {}", broken.display())), "{all}");
    assert!(all.contains("  help: install runc (apt-get install runc)"), "{all}");
    assert!(p.leftovers("ps").is_empty() && p.leftovers("volume").is_empty());
}

#[test]
fn build_without_buildah_refuses_a_run_step_before_building() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("nobuildah").with_image("box");
    p.config(r#"  images.box = { run = [{ command = ["/bin/true"] }] },"#);
    let path = path_without(&["buildah"]);
    let out = p.galley_cmd(&["build"]).env("PATH", path.path()).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("error: host check failed: buildah: `buildah` was not found on PATH"), "{all}");
    assert!(all.contains("  help: install buildah (apt-get install buildah)"), "{all}");
    assert!(!p.home.path().join("store").exists(), "nothing was built");
}

#[test]
fn a_loopback_registry_is_reachable_only_where_the_project_allows_private_addresses() {
    if !runtime_available() {
        return;
    }
    let Some(reg) = require_registry() else {
        return;
    };
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let write = |allow: bool| {
        let conf = format!(
            "{{\n  name = \"doc\",\n  registries.\"{host}\" = {{ insecure = true, allow_private = {allow} }},\n  images.app = {{ base = \"{host}/galley/busybox:1\" }},\n}}\n"
        );
        std::fs::write(dir.path().join("galley.ncl"), conf).unwrap();
    };
    let id = format!("registry:{host}");
    write(true);
    let (_, v, out) = doctor(dir.path(), home.path(), &[]);
    assert_eq!(check(&v, &id)["status"], "pass", "{}", text(&out));
    write(false);
    let (code, v, _) = doctor(dir.path(), home.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v), [id.as_str()], "{v}");
    assert!(check(&v, &id)["detail"].as_str().unwrap().contains("SSRF guard"), "{v}");
    assert!(check(&v, &id)["help"].as_str().unwrap().contains("allow_private = true"), "{v}");
}

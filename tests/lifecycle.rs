//! A secret's whole life: set in the encrypted store, used by a sandbox through check, lock,
//! build, apply, verify and destroy. The canary value must appear only in /run/secrets/NAME while
//! the sandbox runs.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{require_tools, stderr, stdout};

const KEY: &str = "4f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";

struct Life {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    name: String,
}

impl Life {
    fn galley(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_galley"));
        c.arg("-C").arg(self.dir.path()).args(args);
        c.env("GALLEY_HOME", self.home.path()).env("NO_COLOR", "1").env("GALLEY_MASTER_KEY", KEY);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        let _ = self.galley(&["destroy", "--auto-approve", "--volumes"], None);
        let filter = format!("reference=localhost/galley/{}/*", self.name);
        let tags = Command::new("podman").args(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &filter]).output();
        let ours = format!("localhost/galley/{}/", self.name);
        for tag in tags.map(|o| stdout(&o)).unwrap_or_default().lines().filter(|l| l.starts_with(&ours)) {
            let _ = Command::new("podman").args(["rmi", tag]).output();
        }
    }
}

/// Every file under `root` whose bytes contain `needle`.
fn files_containing(root: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if meta.is_file()
            && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            hits.push(p.display().to_string());
        }
    }
    hits
}

/// Host processes whose environ or cmdline contains `needle`.
fn host_processes_containing(needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for f in ["environ", "cmdline"] {
            if std::fs::read(e.path().join(f)).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                hits.push(format!("/proc/{name}/{f}"));
            }
        }
    }
    hits
}

#[test]
fn a_store_secret_appears_only_in_its_file_while_the_sandbox_runs() {
    if !require_tools(&["podman", "buildah"]) {
        return;
    }
    let name = format!("life{}", std::process::id());
    let life = Life { dir: tempfile::tempdir().unwrap(), home: tempfile::tempdir().unwrap(), name: name.clone() };
    std::fs::copy("/bin/busybox", life.dir.path().join("busybox")).unwrap();
    std::fs::write(
        life.dir.path().join("galley.ncl"),
        format!(
            r#"let galley = import "galley/std.ncl" in
{{
  name = "{name}",
  images.app = {{
    files = [{{ src = "busybox", dst = "/bin/busybox", mode = "0755" }}],
    # This test's own image id, so no other test's clean-up can remove it (images reproduce).
    labels = {{ "io.galley.test.owner" = "{name}" }},
  }},
  sandboxes.app = galley.presets.untrusted & {{
    image = "app",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "1000000"],
    secrets.API_KEY = {{ store = "API_KEY" }},
  }},
}}
"#
        ),
    )
    .unwrap();
    let canary = format!("canary-{}-7d1f0c9e5a", std::process::id());
    let mut transcript = String::new();
    let mut step = |args: &[&str], stdin: Option<&str>, code: i32| {
        let out = life.galley(args, stdin);
        assert_eq!(out.status.code(), Some(code), "galley {args:?}: {}{}", stdout(&out), stderr(&out));
        transcript.push_str(&stdout(&out));
        transcript.push_str(&stderr(&out));
    };
    step(&["secret", "set", "API_KEY"], Some(&canary), 0);
    for v in [&[][..], &["-v"][..], &["-vv"][..]] {
        let mut args = v.to_vec();
        args.push("check");
        step(&args, None, 0);
    }
    step(&["-vv", "lock"], None, 0);
    step(&["-vv", "build", "--locked"], None, 0);
    step(&["-vv", "apply", "--locked", "--auto-approve"], None, 0);
    step(&["-vv", "verify"], None, 0);
    step(&["-vv", "status"], None, 0);

    // While it runs: the value is in /run/secrets/API_KEY, owner-only, and nowhere else.
    let container = format!("galley_{name}_default_app");
    let read = Command::new("podman").args(["exec", &container, "/bin/busybox", "cat", "/run/secrets/API_KEY"]).output().unwrap();
    assert_eq!(stdout(&read), canary);
    let ls = Command::new("podman").args(["exec", &container, "/bin/busybox", "stat", "-c", "%a %u", "/run/secrets/API_KEY"]).output().unwrap();
    assert_eq!(stdout(&ls).trim(), "400 1000");
    let inspect = Command::new("podman").args(["inspect", &container]).output().unwrap();
    assert!(!stdout(&inspect).contains(&canary), "the value is in podman inspect");
    let inside = Command::new("podman")
        .args(["exec", &container, "/bin/busybox", "sh", "-c", "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null"])
        .output()
        .unwrap();
    assert!(!stdout(&inside).contains(&canary), "the value is in a process's environ or cmdline inside");
    assert_eq!(host_processes_containing(canary.as_bytes()), Vec::<String>::new(), "host environ/cmdline");

    let lock = std::fs::read_to_string(life.dir.path().join("galley.lock")).unwrap();
    assert!(!lock.contains(&canary) && lock.contains("\"store\": \"API_KEY\""));
    // The store holds it sealed; nothing else under GALLEY_HOME holds it in clear, the run
    // directory's secret file aside.
    let in_home: Vec<String> = files_containing(life.home.path(), canary.as_bytes())
        .into_iter()
        .filter(|p| !p.ends_with("/app/API_KEY"))
        .collect();
    assert_eq!(in_home, Vec::<String>::new(), "the value in clear under GALLEY_HOME");

    // Image layers, as podman saves them.
    let tags = Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &format!("reference=localhost/galley/{name}/*")])
        .output()
        .unwrap();
    let tag = stdout(&tags).lines().find(|l| l.starts_with(&format!("localhost/galley/{name}/"))).unwrap().to_owned();
    let saved = life.home.path().join("image.tar");
    let save = Command::new("podman").args(["image", "save", "-o"]).arg(&saved).arg(&tag).output().unwrap();
    assert!(save.status.success(), "{}", stderr(&save));
    assert!(files_containing(&saved, canary.as_bytes()).is_empty(), "the value is in the image");
    std::fs::remove_file(&saved).unwrap();

    step(&["-vv", "destroy", "--auto-approve"], None, 0);
    assert_eq!(files_containing(life.home.path(), canary.as_bytes()), Vec::<String>::new(), "left behind after destroy");
    assert!(!transcript.contains(&canary), "galley printed the value");
}

//! `galley lock`, `lock --check` and `build --locked` on real projects, real files and real git.

mod support;

use std::process::Command;

use support::{Sandbox, galley_in, git, repo, require_tool, stderr, stdout};

/// A project with a scratch image copying files, and two sandboxes.
const CONFIG: &str = r#"# a project for lock tests
{
  name = "locky",
  images.app = {
    files = [{ src = "site", dst = "/srv" }, { src = "bin", dst = "/bin", mode = "0755" }],
    entrypoint = ["/bin/tool"],
  },
  sandboxes.a = {
    image = "app",
    secrets.TOKEN = { env = "LOCK_TEST_TOKEN" },
    network = 'egress,
    ports = [{ container = 8080, host = 18081 }],
  },
  sandboxes.b = {
    image = "app",
    resources.memory = "64m",
  },
}
"#;

fn project() -> Sandbox {
    let p = Sandbox::with_config(CONFIG);
    p.write("site/index.html", "<p>hello</p>\n");
    p.write("bin/tool", "#!/bin/sh\necho tool\n");
    p
}

fn lock_ok(p: &Sandbox) {
    let out = p.galley(&["lock"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn check(p: &Sandbox) -> (i32, String, String) {
    let out = p.galley(&["lock", "--check"]);
    (out.status.code().unwrap(), stdout(&out), stderr(&out))
}

#[test]
fn example_locks_are_current_without_network_or_runtime() {
    // The committed locks pin every base, so --check reads only the config and the files.
    let home = tempfile::tempdir().unwrap();
    for e in ["hello", "web", "agent"] {
        let out = galley_in(&repo().join("examples").join(e), home.path(), &["lock", "--check"]);
        assert_eq!(out.status.code(), Some(0), "{e}: {}{}", stderr(&out), stdout(&out));
    }
}

#[test]
fn the_hello_lock_is_golden() {
    let p = Sandbox::new();
    let src = repo().join("examples/hello");
    for f in ["galley.ncl", "hello.txt"] {
        std::fs::copy(src.join(f), p.path().join(f)).unwrap();
    }
    lock_ok(&p);
    let made = std::fs::read_to_string(p.path().join("galley.lock")).unwrap();
    let golden = std::fs::read_to_string(src.join("galley.lock")).unwrap();
    assert_eq!(made, golden, "a fresh lock of examples/hello differs from the committed one");
    assert!(made.ends_with("}\n") && !made.contains('\r'));
}

#[test]
fn staleness_matrix() {
    let p = project();
    lock_ok(&p);
    assert_eq!(check(&p).0, 0);
    let config = p.path().join("galley.ncl");
    let original = std::fs::read_to_string(&config).unwrap();

    // Not stale: comments, whitespace, CRLF, field order.
    for (what, text) in [
        ("comment", original.replace("# a project", "# another comment\n# a project")),
        ("whitespace", original.replace("  name = ", "\n\n     name    =   ")),
        ("crlf", original.replace('\n', "\r\n")),
        ("reorder", reorder(&original)),
    ] {
        assert_ne!(text, original, "{what}");
        std::fs::write(&config, &text).unwrap();
        let (code, out, err) = check(&p);
        assert_eq!(code, 0, "{what} made the lock stale: {err}{out}");
    }
    std::fs::write(&config, &original).unwrap();

    // Stale: an input file, naming the image.
    std::fs::write(p.path().join("site/index.html"), "<p>changed</p>\n").unwrap();
    let (code, out, err) = check(&p);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("images.app.inputs.site"), "{err}");
    assert!(out.contains("--- galley.lock (on disk)") && out.contains("+++ galley.lock (from galley.ncl)"), "{out}");
    std::fs::write(p.path().join("site/index.html"), "<p>hello</p>\n").unwrap();
    assert_eq!(check(&p).0, 0);

    // Stale: a port, naming the sandbox and the field.
    std::fs::write(&config, original.replace("host = 18081", "host = 18082")).unwrap();
    let (code, out, err) = check(&p);
    assert_eq!(code, 1);
    assert!(err.contains("sandboxes.a.manifest.ports[0].host: 18081 -> 18082"), "{err}");
    assert!(out.contains("-            \"host\": 18081,") && out.contains("+            \"host\": 18082,"), "{out}");
    std::fs::write(&config, &original).unwrap();

    // A lock from a future galley is a clear error, not a guess.
    let lock = p.path().join("galley.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
    let (code, _, err) = check(&p);
    assert_eq!(code, 2);
    assert!(err.contains("has lock version 2, this galley reads version 1"), "{err}");
    assert!(err.contains("help:"), "{err}");

    // No lock at all.
    std::fs::remove_file(&lock).unwrap();
    let (code, _, err) = check(&p);
    assert_eq!(code, 1);
    assert!(err.contains("galley.lock is missing"), "{err}");
}

/// Move `sandboxes.b` before `images.app`.
fn reorder(text: &str) -> String {
    let images = text.find("  images.app").unwrap();
    let b = text.find("  sandboxes.b").unwrap();
    let end = text.rfind('}').unwrap();
    format!("{}{}{}{}", &text[..images], &text[b..end], &text[images..b], &text[end..])
}

#[test]
fn lock_check_writes_nothing_and_lock_is_idempotent() {
    let p = project();
    lock_ok(&p);
    let lock = p.path().join("galley.lock");
    let first = std::fs::read(&lock).unwrap();
    std::fs::write(p.path().join("site/index.html"), "x").unwrap();
    check(&p);
    assert_eq!(std::fs::read(&lock).unwrap(), first, "--check wrote the lock");
    std::fs::write(p.path().join("site/index.html"), "<p>hello</p>\n").unwrap();
    let out = p.galley(&["lock"]);
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&lock).unwrap(), first);
}

#[test]
fn build_locked_passes_in_a_fresh_home_and_refuses_a_stale_lock() {
    let p = project();
    lock_ok(&p);
    let fresh = tempfile::tempdir().unwrap();
    let out = galley_in(p.path(), fresh.path(), &["build", "--locked"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = galley_in(p.path(), fresh.path(), &["build", "--frozen"]);
    assert!(out.status.success(), "{}", stderr(&out));

    std::fs::write(p.path().join("bin/tool"), "#!/bin/sh\necho changed\n").unwrap();
    let out = galley_in(p.path(), fresh.path(), &["build", "--locked"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("galley.lock is stale, refusing to run with --locked"), "{}", stderr(&out));
    assert!(stderr(&out).contains("images.app.inputs.bin"), "{}", stderr(&out));
}

#[test]
fn build_locked_names_the_layer_a_nondeterministic_step_changed() {
    if !require_tool("buildah") {
        return;
    }
    let p = Sandbox::with_config(
        r#"{
  name = "nondet",
  images.app = {
    files = [{ src = "busybox", dst = "/bin/busybox", mode = "0755" }, { src = "work", dst = "/work" }],
    run = [{ command = ["/bin/busybox", "sh", "-c", "/bin/busybox cat /proc/sys/kernel/random/uuid > /work/stamp"] }],
  },
}
"#,
    );
    std::fs::copy("/bin/busybox", p.path().join("busybox")).unwrap();
    p.write("work/.keep", "");
    lock_ok(&p);
    let fresh = tempfile::tempdir().unwrap();
    let out = galley_in(p.path(), fresh.path(), &["build", "--locked"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not reproducible: layer 2 of image app differs (locked sha256:"), "{err}");
    assert!(!err.contains("layer 1 of image app"), "the files layer is reproducible: {err}");
}

#[test]
fn no_secret_value_reaches_the_lock() {
    let p = project();
    let canary = format!("canary-{}-{}", std::process::id(), "f00dfeed");
    let out = Command::new(env!("CARGO_BIN_EXE_galley"))
        .arg("-C")
        .arg(p.path())
        .args(["-vv", "lock"])
        .env("GALLEY_HOME", p.home.path())
        .env("LOCK_TEST_TOKEN", &canary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = std::fs::read_to_string(p.path().join("galley.lock")).unwrap();
    assert!(lock.contains("\"env\": \"LOCK_TEST_TOKEN\""), "the source is recorded");
    assert!(!lock.contains(&canary));
    assert!(!stdout(&out).contains(&canary) && !stderr(&out).contains(&canary));
}


#[test]
fn locks_of_branches_changing_different_sandboxes_merge_without_conflict() {
    if !require_tool("git") {
        return;
    }
    let p = project();
    let dir = p.path();
    lock_ok(&p);
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "base"]);
    let config = dir.join("galley.ncl");
    let original = std::fs::read_to_string(&config).unwrap();

    git(dir, &["checkout", "-qb", "port"]);
    std::fs::write(&config, original.replace("host = 18081", "host = 18090")).unwrap();
    lock_ok(&p);
    git(dir, &["commit", "-qam", "a: new port"]);

    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["checkout", "-qb", "memory"]);
    std::fs::write(&config, original.replace("memory = \"64m\"", "memory = \"96m\"")).unwrap();
    lock_ok(&p);
    git(dir, &["commit", "-qam", "b: more memory"]);

    git(dir, &["checkout", "-q", "port"]);
    // The config itself conflicts textually only if both touch the same lines; they do not.
    git(dir, &["merge", "-q", "--no-edit", "memory"]);
    let (code, out, err) = check(&p);
    assert_eq!(code, 0, "the merged lock is not the lock of the merged config: {err}{out}");
    let lock = std::fs::read_to_string(dir.join("galley.lock")).unwrap();
    assert!(lock.contains("\"host\": 18090") && lock.contains("\"memory\": \"96m\""));
}

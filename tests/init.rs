//! `galley init` as a new user meets it: each starter template, on a base in a loopback registry,
//! goes through `check --deny warnings`, `lock`, `build --locked`, `apply` and `verify` in a
//! fresh directory, and its sandbox then does what the template says.

mod support;

use std::time::{Duration, Instant};

use support::registry::push_busybox_base;
use support::runner::{free_port, http_get, text, TestProject};
use support::{require_registry, runtime_available};

/// Run `galley init --template` in a fresh directory, then every step a new user takes.
fn start(template: &str, base: &str, extra: &[&str]) -> TestProject {
    let p = TestProject::new(template);
    let mut init = vec!["init", "--template", template, "--base", base, "--name", &p.name];
    init.extend_from_slice(extra);
    p.galley_code(&init, 0);
    p.galley_code(&["check", "--deny", "warnings"], 0);
    p.galley_code(&["lock"], 0);
    p.galley_code(&["build", "--locked"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    p.galley_code(&["verify"], 0);
    p
}

fn logs_until(p: &TestProject, sandbox: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = text(&p.galley(&["logs", sandbox]));
        if logs.contains(needle) || Instant::now() > deadline {
            return logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_starter_checks_locks_builds_applies_verifies_and_runs() {
    if !runtime_available() {
        return;
    }
    let Some(reg) = require_registry() else {
        return;
    };
    let base = push_busybox_base(&reg);

    let agent = start("agent", &base, &[]);
    let out = agent.galley_code(&["exec", "agent", "--", "/bin/sh", "-c", "id -u; pwd; touch /workspace/x && echo writable"], 0);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "/workspace", "writable"], "{out}");
    let lock = std::fs::read_to_string(agent.dir.path().join("galley.lock")).unwrap();
    assert!(lock.contains(&base) && lock.contains("sha256:"), "the lock pins the base by digest: {lock}");

    let port = free_port();
    let service = start("service", &base, &["--port", &port.to_string()]);
    let page = http_get(port, "/").unwrap();
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 "), "{page}");
    assert!(page.contains(&format!("<h1>{} runs in a galley sandbox</h1>", service.name)), "{page}");

    let job = start("job", &base, &[]);
    let logs = logs_until(&job, "job", "job: run at");
    assert!(logs.contains("job: run at") && logs.contains("/workspace"), "{logs}");

    for p in [&agent, &service, &job] {
        p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
    }
}

#[test]
fn init_refuses_a_base_that_names_no_registry() {
    let p = TestProject::new("badbase");
    let out = p.galley_code(&["init", "--base", "busybox:1.36"], 2);
    assert!(out.contains("--base \"busybox:1.36\" is not an image reference"), "{out}");
    assert!(out.contains("help: name the registry"), "{out}");
    assert!(!p.dir.path().join("galley.ncl").exists());
}

//! `galley exec` and `galley logs` on real podman: the command runs as the declared user with no
//! more privilege than the sandbox has, stdin and exit codes pass through, logs stream and
//! follow, a terminal is given only to a terminal, and a sandbox that is not declared or not
//! running is refused with the apply hint.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::runner::{podman_ok, run, text, TestProject};
use support::{require_tool, runtime_available};

/// A sandbox that writes two lines, then echoes whatever appears in /tmp/say, once a second.
const CONFIG: &str = r#"  images.box = {},
  sandboxes.shell = galley.presets.untrusted & {
    image = "box",
    user = "1234:2345",
    command = ["/bin/busybox", "sh", "-c", "echo first; echo second; while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; sleep 1; done"],
  },"#;

fn started() -> Option<TestProject> {
    if !runtime_available() {
        return None;
    }
    let p = TestProject::new("exec").with_image("box");
    p.config(CONFIG);
    p.galley_code(&["apply", "--auto-approve"], 0);
    Some(p)
}

fn status_field(status: &str, key: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// Guards: exec cannot be used to gain capabilities, privileges or syscalls the sandbox was
/// denied, nor to run as another user than the declared one.
#[test]
fn exec_cannot_gain_capabilities_or_privileges_the_sandbox_was_denied() {
    let Some(p) = started() else { return };
    let id = p.galley_code(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "id -u; id -g"], 0);
    assert_eq!(id.lines().collect::<Vec<_>>(), ["1234", "2345"], "{id}");
    let status = p.galley_code(&["exec", "shell", "--", "/bin/busybox", "cat", "/proc/self/status"], 0);
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(&status, set), "0000000000000000", "{set}\n{status}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "{status}");
    assert_eq!(status_field(&status, "Seccomp:"), "2", "{status}");
    // The sandbox's strict profile holds in the exec'd process too: the same filter count.
    let pid1 = p.galley_code(&["exec", "shell", "--", "/bin/busybox", "cat", "/proc/1/status"], 0);
    assert_eq!(status_field(&status, "Seccomp_filters:"), status_field(&pid1, "Seccomp_filters:"), "{status}\n{pid1}");
}

#[test]
fn exec_passes_exit_codes_stdin_and_the_terminal_through() {
    let Some(p) = started() else { return };
    p.galley_code(&["exec", "shell", "--", "/bin/busybox", "true"], 0);
    p.galley_code(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "exit 3"], 3);
    p.galley_code(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "no-such-command"], 127);
    p.galley_code(&["exec", "shell", "--", "/no/such/program"], 127);

    let mut child = p
        .galley_cmd(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "tr a-z A-Z; test -t 0 || echo no-tty"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello from the host\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO FROM THE HOST\nno-tty\n", "{}", text(&out));

    // On a terminal (`script` gives galley one), the command gets a terminal of its own.
    if !require_tool("script") {
        return;
    }
    let line = format!(
        "'{}' -C '{}' exec shell -- /bin/busybox sh -c 'test -t 0 && test -t 1 && echo has-a-tty'",
        env!("CARGO_BIN_EXE_galley"),
        p.dir.path().display()
    );
    let on_tty = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env("GALLEY_HOME", p.home.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(on_tty.status.code(), Some(0), "{}", text(&on_tty));
    assert!(String::from_utf8_lossy(&on_tty.stdout).contains("has-a-tty"), "{}", text(&on_tty));
}

#[test]
fn logs_tail_and_follow_show_the_sandbox_output() {
    let Some(p) = started() else { return };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.galley_code(&["logs", "shell"], 0).contains("second") {
        assert!(Instant::now() < deadline, "the sandbox never wrote its lines");
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = p.galley(&["logs", "shell"]);
    assert_eq!(String::from_utf8_lossy(&all.stdout), "first\nsecond\n", "{}", text(&all));
    let last = p.galley(&["logs", "--tail", "1", "shell"]);
    assert_eq!(String::from_utf8_lossy(&last.stdout), "second\n", "{}", text(&last));
    let future = p.galley(&["logs", "--since", "2099-01-01T00:00:00Z", "shell"]);
    assert_eq!((future.status.code(), future.stdout.as_slice()), (Some(0), &b""[..]), "{}", text(&future));

    // In its own process group, so podman's `logs -f` under it is killed with it.
    let mut follow = p.galley_cmd(&["logs", "-f", "shell"]).stdout(Stdio::piped()).process_group(0).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(e) => panic!("`galley logs -f` did not show {want:?}: {e}"),
            }
        }
    };
    wait_for("second");
    p.galley_code(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "echo written-after-follow > /tmp/say"], 0);
    wait_for("written-after-follow");
    run("kill", &["-KILL", "--", &format!("-{}", follow.id())]);
    let _ = follow.wait();
}

#[test]
fn exec_and_logs_refuse_undeclared_absent_and_stopped_sandboxes() {
    let Some(p) = started() else { return };
    let undeclared = p.galley_code(&["exec", "nosuch", "--", "/bin/busybox", "true"], 2);
    assert!(undeclared.contains("sandbox `nosuch` is not declared in galley.ncl (instance `default`)"), "{undeclared}");
    assert!(undeclared.contains("help: declared sandboxes: shell;"), "{undeclared}");
    for args in [&["exec", "--instance", "other", "shell", "--", "/bin/busybox", "true"][..], &["logs", "--instance", "other", "shell"]] {
        let out = p.galley_code(args, 2);
        assert!(out.contains("sandbox `shell` of instance `other` is not running (absent)"), "{out}");
        assert!(out.contains("help: run `galley apply --instance other`"), "{out}");
    }
    podman_ok(&["stop", "--time", "0", &p.container("default", "shell")]);
    for args in [&["exec", "shell", "--", "/bin/busybox", "true"][..], &["logs", "shell"]] {
        let out = p.galley_code(args, 2);
        assert!(out.contains("sandbox `shell` of instance `default` is not running (exited, exit code"), "{out}");
        assert!(out.contains("help: run `galley apply`"), "{out}");
    }
}

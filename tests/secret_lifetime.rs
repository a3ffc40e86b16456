//! Secret files exist only while their container runs, on real podman: the poststop hook removes
//! them from the host's tmpfs when the container is stopped with `podman stop` and when its
//! command exits by itself; `galley apply` brings them back with a new container.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::runner::{podman, text, TestProject};
use support::runtime_available;

const CANARY: &str = "canary-3b9e5a71-lifetime";

/// Wait up to 20 s for `path` to be gone; whether it went.
fn gone_within(path: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if !path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn secret_files_are_removed_when_the_container_is_stopped_or_exits_by_itself() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("lifetime").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.stay = {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "3600"],
    secrets.TOKEN = { env = "GALLEY_TEST_CANARY" },
  },
  sandboxes.brief = {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sh", "-c", "test -s /run/secrets/TOKEN && sleep 4"],
    secrets.TOKEN = { env = "GALLEY_TEST_CANARY" },
  },"#,
    );
    let apply = || {
        let out = p.galley_cmd(&["apply", "--auto-approve"]).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "apply: {}", text(&out));
        text(&out)
    };
    apply();
    let file = |sandbox: &str| p.run_dir().join(&p.name).join("default").join(sandbox).join("TOKEN");
    let (stay, brief) = (file("stay"), file("brief"));
    assert_eq!(std::fs::read_to_string(&stay).unwrap(), CANARY);
    assert!(brief.exists());

    // Stopped by hand: the hook removes the file, though no galley process is running.
    let stop = podman(&["stop", "--time", "1", &p.container("default", "stay")]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(gone_within(&stay), "{} is still there after podman stop", stay.display());
    // Exited by itself (its command ends after 4 s).
    assert!(gone_within(&brief), "{} is still there after the command exited", brief.display());
    let state = podman(&["inspect", "--format", "{{.State.Status}}", &p.container("default", "brief")]);
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "exited");

    // A start by hand does not run the sandbox without its secret, and brings no file back.
    let start = podman(&["start", &p.container("default", "stay")]);
    assert!(!start.status.success(), "podman start ran the sandbox without its secret file: {}", text(&start));
    assert!(!stay.exists());

    // galley apply replaces the stopped sandboxes and writes their files again; plan says why
    // podman start could not.
    let plan = p.galley_code(&["plan"], 0);
    assert!(plan.contains("replace") && plan.contains("stay"), "{plan}");
    assert!(plan.contains("its secret files were removed when it stopped: only `galley apply` starts it again"), "{plan}");
    apply();
    assert_eq!(std::fs::read_to_string(&stay).unwrap(), CANARY);
    let inside = podman(&["exec", &p.container("default", "stay"), "/bin/busybox", "cat", "/run/secrets/TOKEN"]);
    assert_eq!(String::from_utf8_lossy(&inside.stdout), CANARY, "{}", text(&inside));
}

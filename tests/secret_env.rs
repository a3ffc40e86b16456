//! No secret sideways through the environment: `GALLEY_MASTER_KEY` and the variables a project
//! names as `env` secret sources stay in galley's own process. A real sandbox's conmon (and so
//! every podman call, seen through a wrapper first on PATH that dumps its environment and execs
//! the real podman) and a real secret `command` helper are read from `/proc/PID/environ` and from
//! their own dumps.

mod support;

use support::runner::{TestProject, podman_ok, text};
use support::runtime_available;

const MASTER_KEY: &str = "9c2f6e1a4b7d0c3e8f5a2b9c6d3e0f7a4b1c8d5e2f9a6b3c0d7e4f1a8b5c2d9e";
const ENV_SECRET: &str = "env-source-value-3b8e1f";

fn variables(environ: &[u8]) -> Vec<String> {
    environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn assert_scrubbed(what: &str, vars: &[String], inherits: bool) {
    let names: Vec<&str> = vars
        .iter()
        .map(|v| v.split_once('=').map_or(v.as_str(), |(k, _)| k))
        .collect();
    assert!(
        names.contains(&"PATH"),
        "{what}: an environment was read: {names:?}"
    );
    if inherits {
        assert!(
            names.contains(&"SIDEWAYS_MARKER"),
            "{what}: the ordinary environment is inherited: {names:?}"
        );
    }
    for withheld in ["GALLEY_MASTER_KEY", "SIDEWAYS_TOKEN"] {
        assert!(
            !names.contains(&withheld),
            "{what} inherited {withheld}: {names:?}"
        );
    }
    let all = vars.join("\n");
    assert!(
        !all.contains(MASTER_KEY) && !all.contains(ENV_SECRET),
        "{what}'s environment holds a secret value"
    );
}

#[test]
fn the_master_key_and_env_secret_variables_never_reach_conmon_or_a_secret_command_helper() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("sideways").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.app = {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "600"],
    secrets.TOKEN = { env = "SIDEWAYS_TOKEN" },
    secrets.HELPED = { command = ["/bin/busybox", "sh", "-c", "/bin/busybox env -0 > helper.environ; echo helper-value"] },
  },"#,
    );
    // A podman first on PATH that records the environment each call gets.
    let bin = p.home.path().join("bin");
    let dumps = p.home.path().join("podman-environ");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    let real = support::runner::text(
        &std::process::Command::new("sh")
            .args(["-c", "command -v podman"])
            .output()
            .unwrap(),
    );
    let wrapper = bin.join("podman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nenv -0 > {}/$$\nexec {} \"$@\"\n",
            dumps.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // galley with the wrapper first on PATH, the secrets and an ordinary variable set.
    let galley = |args: &[&str]| {
        p.galley_cmd(args)
            .env("PATH", &path)
            .env("GALLEY_MASTER_KEY", MASTER_KEY)
            .env("SIDEWAYS_TOKEN", ENV_SECRET)
            .env("SIDEWAYS_MARKER", "1")
            .output()
            .unwrap()
    };
    let out = galley(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let helper = std::fs::read(p.dir.path().join("helper.environ"))
        .expect("the helper dumped its environment");
    assert_scrubbed("the secret command helper", &variables(&helper), true);
    let calls: Vec<_> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        calls.len() >= 3,
        "apply called podman through the wrapper: {} calls",
        calls.len()
    );
    for call in calls {
        assert_scrubbed("podman", &variables(&std::fs::read(call).unwrap()), true);
    }

    // verify asks podman while the config evaluates, before galley has read which variables
    // hold the config's secrets: those early calls must not carry them either.
    for call in std::fs::read_dir(&dumps).unwrap() {
        std::fs::remove_file(call.unwrap().path()).unwrap();
    }
    let out = galley(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Applied without a lock: the manifest matches what apply made, and the image is not pinned.
    let report = text(&out);
    assert!(report.contains("PASS  galley manifest") && report.contains("WARN  galley image digest"), "{report}");
    let calls: Vec<_> = std::fs::read_dir(&dumps).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(calls.len() >= 2, "verify called podman through the wrapper: {} calls", calls.len());
    for call in calls {
        assert_scrubbed("podman under verify", &variables(&std::fs::read(call).unwrap()), false);
    }

    // plan and apply, now that the project's record names the instance, list it while the
    // config evaluates: those early calls must not carry the secrets either.
    for call in std::fs::read_dir(&dumps).unwrap() {
        std::fs::remove_file(call.unwrap().path()).unwrap();
    }
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let out = galley(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    let calls: Vec<_> = std::fs::read_dir(&dumps).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(calls.len() >= 4, "plan and apply called podman through the wrapper: {} calls", calls.len());
    for call in calls {
        assert_scrubbed("podman under plan and a second apply", &variables(&std::fs::read(call).unwrap()), false);
    }

    let container = p.container("default", "app");
    let conmon: u32 = podman_ok(&["inspect", "--format", "{{.State.ConmonPid}}", &container])
        .trim()
        .parse()
        .unwrap();
    assert!(conmon > 0, "a running sandbox has a conmon");
    let environ = std::fs::read(format!("/proc/{conmon}/environ")).unwrap();
    // conmon gets what podman passes on, which podman filters itself; it must hold neither.
    assert_scrubbed("conmon", &variables(&environ), false);
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

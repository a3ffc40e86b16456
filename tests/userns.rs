//! Every sandbox in a user namespace of its own, on real podman: a host account with the
//! sandbox's uid can neither read its secrets nor ptrace it, two instances get disjoint ranges of
//! unused host ids, `galley verify` fails a sandbox whose range another galley container shares,
//! and volumes and image files owned by other uids keep working across a re-apply.

mod support;

use std::os::unix::fs::MetadataExt;

use support::runner::{podman, podman_ok, run, text, TestProject};
use support::runtime_available;

const CANARY: &str = "canary-7d41c0e2-userns";

/// The ranges of `/proc/PID/uid_map` (or gid_map): (inside, outside, count).
fn id_map(container: &str, kind: &str) -> Vec<(u64, u64, u64)> {
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", container]).trim().to_owned();
    let text = std::fs::read_to_string(format!("/proc/{pid}/{kind}")).unwrap();
    text.lines()
        .map(|l| {
            let n: Vec<u64> = l.split_whitespace().map(|v| v.parse().unwrap()).collect();
            (n[0], n[1], n[2])
        })
        .collect()
}

fn pid(container: &str) -> String {
    podman_ok(&["inspect", "--format", "{{.State.Pid}}", container]).trim().to_owned()
}

/// Run `argv` on the host as uid:gid 1000:1000 with no supplementary groups.
fn as_host_uid_1000(argv: &[&str]) -> std::process::Output {
    let mut args = vec!["--reuid", "1000", "--regid", "1000", "--clear-groups", "--"];
    args.extend(argv);
    run("setpriv", &args)
}

/// PTRACE_ATTACH to `pid` as host uid 1000: the errno (0 when attached).
fn ptrace_errno_as_host_uid_1000(pid: &str) -> String {
    let script = format!(
        "import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.ptrace(16, {pid}, 0, 0); print(0 if r == 0 else ctypes.get_errno())"
    );
    let out = as_host_uid_1000(&["/usr/bin/python3", "-c", &script]);
    assert!(out.status.success(), "python3 as uid 1000: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn host_uids() -> Vec<u64> {
    std::fs::read_to_string("/etc/passwd").unwrap().lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect()
}

#[test]
fn a_host_account_with_the_sandboxs_uid_cannot_read_its_secrets_or_ptrace_it() {
    if !runtime_available() || !support::require_tool("setpriv") || !support::require_tool("/usr/bin/python3") {
        return;
    }
    let p = TestProject::new("userns").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.agent = {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "3600"],
    secrets.TOKEN = { env = "GALLEY_TEST_CANARY" },
  },"#,
    );
    p.galley_code(&["lock"], 0);
    for instance in ["default", "b"] {
        let out = p.galley_cmd(&["apply", "--auto-approve", "--locked", "--instance", instance]).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "apply --instance {instance}: {}", text(&out));
    }
    let (a, b) = (p.container("default", "agent"), p.container("b", "agent"));

    // Each sandbox's ids are a range of unused high host ids, disjoint from the other's.
    let accounts = host_uids();
    let mut spans = Vec::new();
    for c in [&a, &b] {
        for kind in ["uid_map", "gid_map"] {
            let map = id_map(c, kind);
            assert_eq!(map.len(), 1, "{c} {kind}: {map:?}");
            let (inside, outside, count) = map[0];
            assert_eq!(inside, 0, "{c} {kind}: {map:?}");
            assert!(outside >= 1 << 16 && count >= 1001, "{c} {kind} is not a high private range: {map:?}");
            assert!(accounts.iter().all(|u| *u < outside || *u >= outside + count), "{c} {kind} maps onto a host account: {map:?}");
            if kind == "uid_map" {
                spans.push((outside, outside + count));
            }
        }
    }
    assert!(spans[0].1 <= spans[1].0 || spans[1].1 <= spans[0].0, "the instances share host ids: {spans:?}");

    // The secret file belongs to the host uid the sandbox's uid 1000 maps to: the sandbox reads
    // it, host uid 1000 cannot, neither through /proc/PID/root nor on the host's tmpfs.
    let file = p.run_dir().join(&p.name).join("default/agent/TOKEN");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(u64::from(meta.uid()), spans[0].0 + 1000, "owner of {}", file.display());
    assert_eq!(meta.mode() & 0o777, 0o400);
    let inside = podman(&["exec", &a, "/bin/busybox", "cat", "/run/secrets/TOKEN"]);
    assert_eq!(String::from_utf8_lossy(&inside.stdout), CANARY, "the sandbox reads its secret: {}", text(&inside));
    let pid_a = pid(&a);
    for path in [format!("/proc/{pid_a}/root/run/secrets/TOKEN"), file.display().to_string()] {
        let out = as_host_uid_1000(&["/bin/cat", &path]);
        assert!(!out.status.success() && !text(&out).contains(CANARY), "host uid 1000 read {path}: {}", text(&out));
    }
    assert_eq!(ptrace_errno_as_host_uid_1000(&pid_a), "1", "host uid 1000 must get EPERM from PTRACE_ATTACH");

    // Both pass verify, whose user namespace check sees the other instance's range.
    for instance in ["default", "b"] {
        let out = p.galley_cmd(&["verify", "--instance", instance]).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(0), "verify --instance {instance}: {all}");
        assert!(all.contains("PASS  galley user namespace"), "{all}");
    }

    // A galley container started by hand on instance b's host ids makes b fail the check.
    let image = podman_ok(&["inspect", "--format", "{{.ImageName}}", &b]).trim().to_owned();
    let (base, _) = spans[1];
    let intruder = format!("galley-{}-intruder", p.name);
    let map = format!("0:{base}:65536");
    podman_ok(&[
        "run", "--detach", "--name", &intruder, "--label", &format!("io.galley.project={}", p.name), "--label", "io.galley.instance=intruder",
        "--uidmap", &map, "--gidmap", &map, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none",
        "--entrypoint", r#"["/bin/busybox"]"#, &image, "sleep", "3600",
    ]);
    let out = p.galley_cmd(&["verify", "--instance", "b", "--format", "json"]).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let findings = report["sandboxes"][0]["findings"].as_array().unwrap();
    let checks: std::collections::BTreeSet<&str> = findings.iter().map(|f| f["check"].as_str().unwrap()).collect();
    assert_eq!(checks, ["galley user namespace"].into(), "{report:#}");
    assert!(findings.iter().any(|f| f["message"].as_str().unwrap().contains(&intruder)), "{report:#}");
}

#[test]
fn without_a_user_namespace_host_uid_1000_reads_the_secret_the_attack_this_guards() {
    if !runtime_available() || !support::require_tool("setpriv") {
        return;
    }
    // The same delivery galley made before every sandbox had a user namespace: proof that the
    // check above can fail.
    let p = TestProject::new("nouserns").with_image("box");
    p.config("  images.box = {},\n  sandboxes.agent = { image = \"box\", user = \"1000:1000\", command = [\"/bin/busybox\", \"sleep\", \"3600\"] },");
    p.galley_code(&["apply", "--auto-approve"], 0);
    let image = podman_ok(&["inspect", "--format", "{{.ImageName}}", &p.container("default", "agent")]).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("TOKEN");
    std::fs::write(&file, CANARY).unwrap();
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let name = format!("galley-{}-control", p.name);
    podman_ok(&[
        "run", "--detach", "--name", &name, "--label", &format!("io.galley.project={}", p.name), "--user", "1000:1000",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none",
        "--mount", &format!("type=bind,src={},dst=/run/secrets/TOKEN,ro=true", file.display()),
        "--entrypoint", r#"["/bin/busybox"]"#, &image, "sleep", "3600",
    ]);
    let out = as_host_uid_1000(&["/bin/cat", &format!("/proc/{}/root/run/secrets/TOKEN", pid(&name))]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), CANARY, "{}", text(&out));
}

#[test]
fn volumes_and_image_files_of_other_uids_keep_working_across_a_reapply() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("usernsvol").with_image("box");
    std::fs::write(p.dir.path().join("owned.txt"), "owned by 4321\n").unwrap();
    let config = |generation: u32| {
        format!(
            r#"  images.box = {{ files = [
    {{ src = "busybox", dst = "/bin/busybox", mode = "0755" }},
    {{ src = "owned.txt", dst = "/data/owned.txt", uid = 4321, gid = 4321, mode = "0600" }},
  ], labels = {{ "io.galley.test.owner" = "{}" }} }},
  sandboxes.app = {{
    image = "box",
    user = "4321:4321",
    env.GENERATION = "{generation}",
    command = ["/bin/busybox", "sh", "-c", "cat /data/owned.txt > /work/copy-$GENERATION && echo written-$GENERATION >> /work/log && exec sleep 3600"],
    volumes = [{{ name = "work", path = "/work" }}],
  }},"#,
            p.name
        )
    };
    let container = p.container("default", "app");
    let mut maps = Vec::new();
    for generation in 1..=2 {
        p.config(&config(generation));
        p.galley_code(&["apply", "--auto-approve"], 0);
        maps.push(id_map(&container, "uid_map"));
        let mut log = String::new();
        for _ in 0..50 {
            log = podman(&["exec", &container, "/bin/busybox", "cat", "/work/log"]).stdout.iter().map(|b| *b as char).collect();
            if log.contains(&format!("written-{generation}")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let want: String = (1..=generation).map(|g| format!("written-{g}\n")).collect();
        assert_eq!(log, want, "generation {generation}: the volume keeps what earlier sandboxes wrote");
        let copy = podman(&["exec", &container, "/bin/busybox", "cat", &format!("/work/copy-{generation}")]);
        assert_eq!(String::from_utf8_lossy(&copy.stdout), "owned by 4321\n", "image file of uid 4321: {}", text(&copy));
    }
    eprintln!("uid maps across the re-apply: {maps:?}");
    assert!(maps.iter().all(|m| m[0].1 >= 1 << 16), "{maps:?}");
}

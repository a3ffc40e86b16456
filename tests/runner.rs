//! The runner on real podman: every enforced setting seen in `podman inspect` and from inside
//! the sandbox, idempotent apply, plan exit codes, secrets, ports, instance isolation, safe `cp`
//! and host limits. Each test uses its own project, GALLEY_HOME and image, and cleans up.

mod support;

use std::collections::BTreeMap;

use support::runner::{free_port, http_get, podman, podman_ok, text, TestProject};
use support::runtime_available;

const CANARY: &str = "canary-5f1e2d9a-secret";

fn web_config(port: u16, memory: &str) -> String {
    format!(
        r#"  images.box = {{}},
  sandboxes.web = {{
    image = "box",
    user = "1000:1000",
    network = 'egress,
    command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/workspace"],
    ports = [{{ container = 8080, host = {port} }}],
    capabilities = ["NET_BIND_SERVICE"],
    secrets.TOKEN = {{ env = "GALLEY_TEST_CANARY" }},
    volumes = [{{ name = "workspace", path = "/workspace" }}],
    tmpfs = [{{ path = "/tmp", size = "16m" }}],
    resources = {{ memory = "{memory}", cpus = 0.5, pids = 32, nofile = 512, nproc = 128 }},
  }},
  sandboxes.idle = galley.presets.untrusted & {{
    image = "box",
    user = "2000:2000",
    command = ["/bin/busybox", "sleep", "1000000"],
    volumes = [{{ name = "scratch", path = "/workspace" }}],
    resources.nofile = 256,
  }},"#
    )
}

fn status_field(status: &str, key: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_owned()).unwrap_or_default()
}

#[test]
fn apply_enforces_every_setting_and_converges() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("life").with_image("box");
    let port = free_port();
    p.config(&web_config(port, "64m"));
    let with_canary = |args: &[&str], code: i32| {
        let out = p.galley_cmd(args).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(code), "galley {args:?}: {all}");
        assert!(!all.contains(CANARY), "galley printed the secret: {all}");
        all
    };

    let plan = p.galley_code(&["plan", "--detailed-exitcode"], 2);
    assert!(plan.contains("+ create    web") && plan.contains("+ create    idle"), "{plan}");
    let refused = p.galley_code(&["apply"], 2);
    assert!(refused.contains("not a terminal") && refused.contains("--auto-approve"), "{refused}");
    assert!(p.leftovers("ps").is_empty());

    with_canary(&["apply", "--auto-approve"], 0);
    let web = p.container("default", "web");
    let idle = p.container("default", "idle");

    // podman inspect: what podman was asked to enforce.
    let inspect = podman_ok(&["inspect", &web, &idle]);
    assert!(!inspect.contains(CANARY), "secret value in podman inspect");
    let v: Vec<serde_json::Value> = serde_json::from_str(&inspect).unwrap();
    let hc = &v[0]["HostConfig"];
    let cfg = &v[0]["Config"];
    assert_eq!(v[0]["Name"], web.as_str());
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["Hostname"], "web");
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["PidsLimit"], 32);
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(v[0]["EffectiveCaps"], serde_json::json!(["CAP_NET_BIND_SERVICE"]));
    assert_eq!(v[0]["BoundingCaps"], serde_json::json!(["CAP_NET_BIND_SERVICE"]));
    assert!(v[1]["EffectiveCaps"].as_array().is_none_or(Vec::is_empty), "{}", v[1]["EffectiveCaps"]);
    let secopt = hc["SecurityOpt"].to_string();
    assert!(secopt.contains("no-new-privileges") && secopt.contains("seccomp="), "{secopt}");
    assert!(!secopt.contains("unconfined"), "{secopt}");
    let ulimits = hc["Ulimits"].to_string();
    assert!(ulimits.contains("RLIMIT_NOFILE") && ulimits.contains("512"), "{ulimits}");
    let bindings = hc["PortBindings"].to_string();
    assert!(bindings.contains(r#""HostIp":"127.0.0.1""#) && bindings.contains(&port.to_string()), "{bindings}");
    let labels = &cfg["Labels"];
    assert_eq!(labels["io.galley.project"], p.name.as_str());
    assert!(labels["io.galley.manifest"].as_str().unwrap().starts_with("sha256:"));
    for c in &v {
        for m in c["Mounts"].as_array().unwrap() {
            if m["Type"] == "bind" {
                let dst = m["Destination"].as_str().unwrap();
                assert!(dst.starts_with("/run/secrets/"), "host bind mount {m}");
                assert!(!m["Source"].as_str().unwrap().contains("podman.sock"));
            }
        }
    }
    assert!(!v[0]["Config"]["Env"].to_string().contains("TOKEN="));
    assert_eq!(v[1]["HostConfig"]["NetworkMode"], "none");

    // From inside: capabilities, no_new_privs, seccomp, uid, limits.
    for (sandbox, uid, caps) in [("web", "1000", "0000000000000400"), ("idle", "2000", "0000000000000000")] {
        let (ok, st) = p.exec("default", sandbox, "cat /proc/self/status");
        assert!(ok, "{st}");
        assert_eq!(status_field(&st, "CapEff:"), caps, "{sandbox}");
        assert_eq!(status_field(&st, "CapBnd:"), caps, "{sandbox}");
        assert_eq!(status_field(&st, "NoNewPrivs:"), "1", "{sandbox}");
        assert_eq!(status_field(&st, "Seccomp:"), "2", "{sandbox}");
        assert!(status_field(&st, "Uid:").starts_with(uid), "{sandbox}: {st}");
    }
    let (_, limits) = p.exec("default", "web", "cat /proc/1/limits");
    assert!(limits.lines().any(|l| l.starts_with("Max open files") && l.contains("512")), "{limits}");
    assert!(limits.lines().any(|l| l.starts_with("Max processes") && l.contains("128")), "{limits}");
    let (ok, _) = p.exec("default", "web", "touch /newfile");
    assert!(!ok, "root filesystem is writable");
    let (ok, out) = p.exec("default", "idle", "touch /tmp/x && touch /workspace/x && echo ok");
    assert!(ok && out.contains("ok"), "{out}");

    // The secret: a 0400 file of the sandbox uid on a tmpfs, nowhere else.
    let (ok, out) = p.exec("default", "web", "stat -c '%a %u' /run/secrets/TOKEN; stat -f -c %T /run/secrets/TOKEN; cat /run/secrets/TOKEN");
    assert!(ok, "{out}");
    assert!(out.contains("400 1000") && out.contains("tmpfs") && out.contains(CANARY), "{out}");
    let (_, environ) = p.exec("default", "web", "cat /proc/[0-9]*/environ | tr '\\0' '\\n'");
    assert!(!environ.contains(CANARY), "secret in a process environment");
    let (ok, _) = p.exec("default", "idle", "ls /run/secrets/TOKEN");
    assert!(!ok, "a sandbox without the secret sees it");

    // The port answers on 127.0.0.1.
    let site = tempfile::tempdir().unwrap();
    let page = site.path().join("site");
    std::fs::create_dir(&page).unwrap();
    std::fs::write(page.join("index.html"), "hello from the sandbox\n").unwrap();
    p.galley_code(&["cp", page.to_str().unwrap(), "web:"], 0);
    let answer = http_get(port, "/site/index.html").unwrap();
    assert!(answer.starts_with("HTTP/1.") && answer.contains("hello from the sandbox"), "{answer}");
    let (_, owner) = p.exec("default", "web", "stat -c %u /workspace/site/index.html");
    assert_eq!(owner.trim(), "1000");
    let ports = podman_ok(&["port", &web]);
    assert_eq!(ports.trim(), format!("8080/tcp -> 127.0.0.1:{port}"));

    // Idempotence and plan exit codes.
    let again = with_canary(&["apply", "--auto-approve"], 0);
    assert!(again.contains("no changes"), "{again}");
    p.galley_code(&["plan", "--detailed-exitcode"], 0);
    let status = p.galley_code(&["status", "--format", "json"], 0);
    let rows: Vec<BTreeMap<String, serde_json::Value>> = serde_json::from_str(status.lines().take_while(|l| !l.is_empty()).collect::<String>().as_str()).unwrap_or_default();
    assert!(status.matches("\"matches\"").count() == 2, "{status} {rows:?}");

    p.config(&web_config(port, "96m"));
    let plan = p.galley_code(&["plan", "--detailed-exitcode"], 2);
    assert!(plan.contains("~ replace   web") && plan.contains("resources.memory: \"64m\" -> \"96m\""), "{plan}");
    assert!(plan.contains("= unchanged idle"), "{plan}");
    with_canary(&["apply", "--auto-approve"], 0);
    assert_eq!(podman_ok(&["inspect", "--format", "{{.HostConfig.Memory}}", &web]).trim(), (96 << 20).to_string());
    assert!(http_get(port, "/site/index.html").unwrap().contains("hello from the sandbox"), "volume kept across replace");

    // Destroy keeps volumes unless asked, and removes the secret files.
    p.galley_code(&["destroy", "--auto-approve"], 0);
    assert!(p.leftovers("ps").is_empty() && p.leftovers("network").is_empty());
    let kept: Vec<String> = ["scratch", "workspace"].iter().map(|v| format!("galley_{}_default_{v}", p.name)).collect();
    assert_eq!(p.leftovers("volume"), kept);
    let run = p.run_dir().join(&p.name).join("default");
    assert!(!run.exists(), "secret files survive destroy");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(p.home.path().to_str().unwrap()), "secret tmpfs still mounted");
    p.galley_code(&["destroy", "--volumes", "--auto-approve"], 0);
    assert!(p.leftovers("volume").is_empty());
}

fn svc_config() -> &'static str {
    r#"  images.box = {},
  sandboxes.svc = {
    image = "box",
    user = "1000:1000",
    network = 'isolated,
    command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"],
  },"#
}

#[test]
fn instances_cannot_reach_each_other() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("iso").with_image("box");
    p.config(svc_config());
    for i in ["one", "two"] {
        p.galley_code(&["apply", "--auto-approve", "--instance", i], 0);
    }
    let ip = |i: &str| {
        let name = p.container(i, "svc");
        podman_ok(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name]).trim().to_owned()
    };
    let (ip1, ip2) = (ip("one"), ip("two"));
    assert!(!ip1.is_empty() && !ip2.is_empty() && ip1 != ip2);
    let probe = |from: &str, ip: &str| {
        let script = format!("printf 'GET /bin/busybox HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {ip} 8080 | head -c 15");
        let (_, out) = p.exec(from, "svc", &script);
        out.contains("200 OK")
    };
    let lookup = |from: &str, name: &str| p.exec(from, "svc", &format!("/bin/busybox nslookup {name}")).0;
    for (me, my_ip, other, other_ip) in [("one", &ip1, "two", &ip2), ("two", &ip2, "one", &ip1)] {
        assert!(probe(me, my_ip), "{me} cannot reach itself");
        assert!(lookup(me, &p.container(me, "svc")), "{me} cannot resolve its own name");
        assert!(!probe(me, other_ip), "{me} reaches {other} by IP");
        assert!(!lookup(me, &p.container(other, "svc")), "{me} resolves {other} by name");
    }
    let nets = podman_ok(&["network", "inspect", "--format", "{{.Internal}} {{index .Options \"isolate\"}}", &format!("galley_{}_one", p.name)]);
    assert_eq!(nets.trim(), "true true");
    for i in ["one", "two"] {
        p.galley_code(&["destroy", "--auto-approve", "--volumes", "--instance", i], 0);
    }
    assert!(p.leftovers("ps").is_empty() && p.leftovers("network").is_empty());
}

#[test]
fn a_cni_network_backend_is_refused_before_anything_is_created() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("cni").with_image("box");
    p.config(svc_config());
    let conf = p.dir.path().join("cni-containers.conf");
    std::fs::write(&conf, "[network]\nnetwork_backend = \"cni\"\n").unwrap();
    let out = p.galley_cmd(&["apply", "--auto-approve"]).env("CONTAINERS_CONF", &conf).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("sandbox `svc` failed") && all.contains("podman uses the 'cni' network backend"), "{all}");
    assert!(all.contains("help: install netavark and aardvark-dns"), "{all}");
    assert!(p.leftovers("ps").is_empty());
    let filter = format!("label=io.galley.project={}", p.name);
    let cni_networks = std::process::Command::new("podman")
        .args(["network", "ls", "--format", "{{.Name}}", "--filter", &filter])
        .env("CONTAINERS_CONF", &conf)
        .output()
        .unwrap();
    assert!(cni_networks.status.success() && cni_networks.stdout.is_empty(), "{}", text(&cni_networks));
    assert!(p.leftovers("network").is_empty());
}

#[test]
fn cp_out_of_a_hostile_sandbox_stays_in_the_destination() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("cp").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.agent = galley.presets.untrusted & {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "1000000"],
  },"#,
    );
    p.galley_code(&["apply", "--auto-approve"], 0);
    let plant = "cd /workspace && mkdir -p out/sub && echo good > out/sub/file.txt && echo x > out/..evil \
        && ln -s /etc out/etc && ln -s ../../../../.. out/sub/up && ln out/sub/file.txt out/hard \
        && ln -s /etc/passwd out/passwd && mkfifo out/fifo && echo planted";
    let (ok, out) = p.exec("default", "agent", plant);
    assert!(ok && out.contains("planted"), "{out}");

    let root = tempfile::tempdir().unwrap();
    let sentinel = root.path().join("sentinel");
    std::fs::create_dir_all(sentinel.join("etc")).unwrap();
    std::fs::write(sentinel.join("etc/passwd"), "sentinel\n").unwrap();
    let before = tree(root.path());
    let dest = root.path().join("dest");
    let out = p.galley_code(&["cp", "agent:out", dest.to_str().unwrap()], 1);
    for what in ["out/etc: symbolic link", "out/sub/up: symbolic link", "out/passwd: symbolic link", "out/fifo: fifo"] {
        assert!(out.contains(what), "not reported: {what}\n{out}");
    }
    assert_eq!(std::fs::read_to_string(dest.join("out/sub/file.txt")).unwrap(), "good\n");
    assert_eq!(std::fs::read_to_string(dest.join("out/..evil")).unwrap(), "x\n");
    // A hard link inside the copied tree arrives as an independent copy.
    assert_eq!(std::fs::read_to_string(dest.join("out/hard")).unwrap(), "good\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dest.join("out/hard")).unwrap().nlink(), 1);
    let after = tree(root.path());
    let outside: Vec<_> = after.iter().filter(|(k, _)| !k.starts_with("dest")).collect();
    let outside_before: Vec<_> = before.iter().collect();
    assert_eq!(outside, outside_before, "something outside the destination changed");
    for (path, kind) in &after {
        assert!(!kind.starts_with("link"), "a symlink was written: {path}");
    }
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Every path under `root` with its kind and content.
fn tree(root: &std::path::Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let kind = if meta.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(e.path()).unwrap())
            } else if meta.is_dir() {
                stack.push(e.path());
                "dir".into()
            } else {
                format!("file {}", String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()))
            };
            out.insert(rel, kind);
        }
    }
    out
}

#[test]
fn host_limits_are_explained_before_anything_starts() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("host");
    p.config(
        r#"  images.box = {},
  sandboxes.many = { image = "box", resources.nofile = 1000000000 },"#,
    );
    let out = p.galley_code(&["apply", "--auto-approve"], 2);
    assert!(out.contains("resources.nofile = 1000000000 exceeds the host's hard limit"), "{out}");
    assert!(out.contains("help: lower resources.nofile"), "{out}");
    assert!(p.leftovers("ps").is_empty(), "a container was created");
    let _ = podman(&["ps"]);
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

#[test]
fn a_partial_failure_is_reported_and_a_rerun_converges() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("part").with_image("box");
    let config = |crash: bool| {
        let command = if crash {
            r#"["/bin/busybox", "sh", "-c", "echo boom-before-exit >&2; exit 7"]"#
        } else {
            r#"["/bin/busybox", "sleep", "1000000"]"#
        };
        format!(
            r#"  images.box = {{}},
  sandboxes.good = {{ image = "box", command = ["/bin/busybox", "sleep", "1000000"] }},
  sandboxes.flaky = {{ image = "box", command = {command} }},
  sandboxes.lost = {{ image = "missing", command = ["/bin/busybox", "true"] }},
  images.missing = {{ run = [{{ command = ["/not-there"] }}] }},"#
        )
    };
    p.config(&config(true));
    let out = p.galley_code(&["apply", "--auto-approve"], 2);
    assert!(out.contains("sandbox `flaky` failed") && out.contains("boom-before-exit"), "{out}");
    assert!(out.contains("sandbox `lost` failed") && out.contains("not-there"), "{out}");
    assert!(out.contains("1 started"), "{out}");
    assert_eq!(p.leftovers("ps"), vec![p.container("default", "good")]);
    p.galley_code(&["plan", "--detailed-exitcode"], 2);

    p.config(&config(false).replace("sandboxes.lost = { image = \"missing\", command = [\"/bin/busybox\", \"true\"] },\n", ""));
    let out = p.galley_code(&["apply", "--auto-approve"], 0);
    assert!(out.contains("+ create    flaky") && out.contains("= unchanged good"), "{out}");
    p.galley_code(&["plan", "--detailed-exitcode"], 0);
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Guards the live state galley reads while galley.ncl evaluates, under the name the project
/// had when last applied from its directory: after a rename that state is another project's,
/// and planning from it would "rename" that project's container away. Also guards the instance
/// lock taken for that early read: held elsewhere, it neither blocks a renamed project nor
/// lets two galleys change one instance.
#[test]
fn a_renamed_project_is_planned_under_its_new_name_and_leaves_the_old_one_alone() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("renamed").with_image("box");
    p.config("  images.box = {},\n  sandboxes.s = { image = \"box\", command = [\"/bin/busybox\", \"sleep\", \"1000000\"] },");
    p.galley_code(&["apply", "--auto-approve"], 0);
    let galley_ncl = p.dir.path().join("galley.ncl");
    let first = std::fs::read_to_string(&galley_ncl).unwrap();
    let renamed = format!("{}-b", p.name);
    let _renamed_containers = RemovedOnDrop(renamed.clone());
    std::fs::write(&galley_ncl, first.replace(&format!("name = \"{}\"", p.name), &format!("name = \"{renamed}\""))).unwrap();
    let out = p.galley_code(&["plan"], 0);
    assert!(out.contains("+ create    s") && !out.contains("renamed from"), "{out}");

    // The old instance is busy: the renamed project does not care.
    // The instance lock galley itself takes, as another galley process would hold it.
    let lock = |project: &str| {
        let instance = galley::runtime::Instance::new(project, "default").unwrap();
        galley::runtime::state::lock(p.home.path(), &instance).expect("the instance is free")
    };
    let old_holder = lock(&p.name);
    let out = p.galley_code(&["apply", "--auto-approve"], 0);
    assert!(out.contains("1 started, 0 destroyed"), "{out}");
    let names = |project: &str| podman_ok(&["ps", "--format", "{{.Names}}", "--filter", &format!("label=io.galley.project={project}")]);
    assert_eq!(names(&p.name).trim(), p.container("default", "s"));
    assert_eq!(names(&renamed).trim(), format!("galley_{renamed}_default_s"));
    drop(old_holder);

    // Its own instance busy: refused, though the early read was under that very name.
    let holder = lock(&renamed);
    let out = p.galley(&["apply", "--auto-approve"]);
    assert!(!out.status.success() && text(&out).contains("is being changed by another galley process"), "{}", text(&out));
    drop(holder);

    p.galley_code(&["destroy", "--auto-approve"], 0);
    assert_eq!(names(&renamed).trim(), "");
    std::fs::write(&galley_ncl, first).unwrap();
}

/// The containers of a project `TestProject` does not know of, removed however the test ends.
struct RemovedOnDrop(String);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let filter = format!("label=io.galley.project={}", self.0);
        for name in podman_ok(&["ps", "--all", "--format", "{{.Names}}", "--filter", &filter]).lines().filter(|l| !l.is_empty()) {
            podman(&["rm", "--force", "--time", "0", name]);
        }
    }
}

/// Guards a sandbox landing in the root group: `user = "1500"` names no gid, and the one rule
/// (the gid is the uid) holds everywhere galley acts: the sandbox's processes, `galley exec`, the
/// secret file, files copied in with `galley cp`, and `galley verify`, which checks the process.
#[test]
fn a_user_written_without_a_gid_runs_in_its_own_group_not_roots() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("gid").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.solo = galley.presets.untrusted & {
    image = "box",
    user = "1500",
    command = ["/bin/busybox", "sleep", "1000000"],
    secrets.TOKEN = { env = "GALLEY_TEST_CANARY" },
    volumes = [{ name = "workspace", path = "/workspace" }],
  },"#,
    );
    p.galley_code(&["lock"], 0);
    let out = p.galley_cmd(&["apply", "--auto-approve", "--locked"]).env("GALLEY_TEST_CANARY", CANARY).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (ok, ids) = p.exec("default", "solo", "id -u; id -g; id -G; stat -c %u:%g /run/secrets/TOKEN");
    assert!(ok, "{ids}");
    assert_eq!(ids.lines().collect::<Vec<_>>(), ["1500", "1500", "1500", "1500:1500"], "{ids}");
    let exec = p.galley_code(&["exec", "solo", "--", "/bin/busybox", "id", "-g"], 0);
    assert_eq!(exec.lines().last(), Some("1500"), "{exec}");
    let local = p.dir.path().join("note.txt");
    std::fs::write(&local, "hello").unwrap();
    p.galley_code(&["cp", &local.display().to_string(), "solo:/workspace"], 0);
    let (_, owner) = p.exec("default", "solo", "stat -c %u:%g /workspace/note.txt");
    assert_eq!(owner.trim(), "1500:1500");
    p.galley_code(&["verify"], 0);
}

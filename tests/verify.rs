//! `galley verify` against real podman containers: a sandbox started with the runner's own
//! `podman run` invocation (`Podman::run_cmd`) passes; each single violation, that invocation
//! with one change, fails exactly the check named after it; processes inside cannot talk a
//! failing check into passing.

mod support;

use std::collections::BTreeSet;

use support::runtime_available;
use support::verify::*;

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_sandbox_started_like_the_runner_passes_every_check() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let launch = f.launch();
    f.start(&launch);
    let (code, report) = f.verify_json(&[]);
    assert_eq!(failing(&report), BTreeSet::new(), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    let checks = report["sandboxes"][0]["checks"].as_array().unwrap();
    assert!(checks.len() >= 20, "{report:#}");
    assert!(checks.iter().all(|c| c["passed"] == true));

    let text = f.galley(&["verify", SANDBOX]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    eprintln!("{stdout}");
    assert_eq!(text.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS  5.4 privileged"), "{stdout}");
}

type Mutation = Box<dyn Fn(&mut Fixture, &mut Launch)>;

/// One violation of the manifest and the checks it must fail.
struct Mutant {
    name: &'static str,
    expect: &'static [&'static str],
    /// A substring one finding's message must hold.
    message: Option<&'static str>,
    apply: Mutation,
}

fn mutant(
    name: &'static str,
    expect: &'static [&'static str],
    apply: impl Fn(&mut Fixture, &mut Launch) + 'static,
) -> Mutant {
    Mutant { name, expect, message: None, apply: Box::new(apply) }
}

fn mutants() -> Vec<Mutant> {
    let shell = |l: &mut Launch, script: &str| {
        l.command = vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script.into()];
    };
    vec![
        mutant("privileged", &["5.4 privileged", "5.3 capabilities", "5.17 devices"], |_, l| {
            l.opt(&["--privileged"]);
        }),
        mutant("cap-add SYS_ADMIN", &["5.3 capabilities"], |_, l| {
            l.opt(&["--cap-add", "SYS_ADMIN"]);
        }),
        mutant("no cap-drop ALL", &["5.3 capabilities"], |_, l| {
            l.remove(&["--cap-drop", "ALL"]);
        }),
        mutant("seccomp=unconfined", &["5.21 seccomp"], |_, l| {
            l.set_opt("--security-opt", "seccomp=", "seccomp=unconfined");
        }),
        mutant("no seccomp option", &["5.21 seccomp"], |_, l| {
            l.drop_matching("--security-opt", "seccomp=");
        }),
        mutant("no no-new-privileges", &["5.25 no-new-privileges"], |_, l| {
            l.remove(&["--security-opt", "no-new-privileges"]);
        }),
        // The sandbox has no egress: galley forwards its port, and podman publishes nothing.
        mutant("port on 0.0.0.0", &["5.13 bind to host interface"], |_, l| {
            // Another host port: the declared one is the forwarder's.
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let p = format!("0.0.0.0:{free}:8080/tcp");
            l.opt(&["--publish", &p]);
        }),
        mutant("no listener behind the forwarded port", &["galley forwarded ports"], |_, l| {
            l.command = ["/bin/busybox", "sleep", "1000000"].map(String::from).to_vec();
        }),
        mutant("podman socket mounted", &["5.31 runtime socket"], |f, l| {
            let sock = f.dir.path().join("podman.sock");
            if !sock.exists() {
                std::mem::forget(std::os::unix::net::UnixListener::bind(&sock).unwrap());
            }
            l.opt(&["-v", &format!("{}:/run/podman/podman.sock", sock.display())]);
        }),
        mutant("host /etc mounted", &["5.5 host mounts"], |_, l| {
            l.opt(&["-v", "/etc:/host-etc:ro"]);
        }),
        mutant("host file posing as a secret", &["5.5 host mounts"], |_, l| {
            l.set_opt("--mount", "type=bind,src=/dev/shm/", "type=bind,src=/etc/hostname,dst=/run/secrets/TOKEN,ro=true");
        }),
        // The kernel refuses the host's pid, ipc or network namespace to a container in a user
        // namespace of its own: those mutants leave the host's user namespace too.
        mutant("pid host", &["5.15 pid namespace", "galley user namespace"], |_, l| {
            l.remove(&["--userns=auto:size=65536"]).opt(&["--pid", "host"]);
        }),
        mutant("ipc host", &["5.16 ipc namespace", "galley user namespace"], |_, l| {
            l.remove(&["--userns=auto:size=65536"]).opt(&["--ipc", "host"]);
        }),
        mutant("uts host", &["5.20 uts namespace"], |_, l| {
            // podman refuses a hostname of the sandbox's own in the host's uts namespace.
            l.drop_opt("--hostname", true).opt(&["--uts", "host"]);
        }),
        mutant("device passed in", &["5.17 devices"], |_, l| {
            // In a user namespace podman bind-mounts a device, onto a node of the same name.
            l.opt(&["--device", "/dev/zero"]);
        }),
        Mutant {
            message: Some("secret TOKEN visible in environ of pid"),
            ..mutant("secret in -e", &["galley secret exposure"], |f, l| {
                l.opt(&["-e", &format!("LEAK={}", f.secret)]);
            })
        },
        Mutant {
            message: Some("secret TOKEN visible in cmdline of pid"),
            ..mutant("secret in argv", &["galley secret exposure"], move |f, l| {
                shell(l, "/bin/busybox httpd -f -p 8080 -h /; :");
                l.command.extend(["sh".into(), f.secret.clone()]);
            })
        },
        mutant("setuid file in the image", &["4.8 setuid files"], |f, l| {
            let image = f.build_image("setuid", &[("/bin/su", "4755")]);
            let digest = f.image_digest(&image);
            let label = format!("io.galley.manifest={}", f.manifest(&digest).digest());
            l.set_opt("--label", "io.galley.manifest=", &label);
            l.image = image;
        }),
        mutant("extra listening port", &["5.8 listening ports"], move |_, l| {
            shell(l, "/bin/busybox httpd -p 8080 -h /; /bin/busybox nc -l -p 9000");
        }),
        mutant("no user namespace", &["galley user namespace"], |_, l| {
            l.remove(&["--userns=auto:size=65536"]);
        }),
        // podman 4.3 records no UsernsMode for --userns host: only the kernel's view shows it.
        mutant("userns host", &["galley user namespace"], |_, l| {
            l.remove(&["--userns=auto:size=65536"]).opt(&["--userns", "host"]);
        }),
        mutant("root user", &["4.1 user"], |_, l| {
            l.set_opt("--user", "65534", "0:0");
        }),
        mutant("writable root", &["5.12 read-only root"], |_, l| {
            l.drop_opt("--read-only", false);
        }),
        mutant("no memory limit", &["5.10 memory"], |_, l| {
            l.drop_opt("--memory", true);
        }),
        mutant("no cpu limit", &["5.11 cpu"], |_, l| {
            l.drop_opt("--cpus", true);
        }),
        mutant("no pids limit", &["5.28 pids limit"], |_, l| {
            l.drop_opt("--pids-limit", true);
        }),
        mutant("other nofile ulimit", &["5.18 ulimits"], |_, l| {
            l.set_opt("--ulimit", "nofile=", "nofile=2048:2048");
        }),
        mutant("host network", &["5.9 network", "5.8 listening ports", "galley no route out", "galley user namespace"], |_, l| {
            // podman allows a network alias on a bridge network only.
            l.set_opt("--network", "galley_", "host").drop_opt("--network-alias", true).remove(&["--userns=auto:size=65536"]);
        }),
        mutant("other image", &["galley image digest"], |f, l| {
            let image = f.build_image("other", &[("/bin/extra", "0755")]);
            l.opt(&["--label", &format!("io.galley.image={}", f.digest)]);
            l.image = image;
        }),
        // Last: it leaves the instance's network routed.
        mutant("network with a route out", &["5.9 network", "galley no route out"], |f, _| {
            run("podman", &["network", "rm", "-f", &f.network()]);
            run("podman", &["network", "create", &f.network()]);
            // Its host side closed as galley would: only the route out is wrong.
            galley::runtime::firewall::close(&f.podman(), &[f.network()]).unwrap();
        }),
    ]
}

#[test]
fn every_single_violation_fails_exactly_its_check() {
    if !runtime_available() {
        return;
    }
    let mut f = Fixture::new();
    let all = mutants();
    let (mut caught, mut wrong) = (0, Vec::new());
    for m in &all {
        let mut launch = f.launch();
        (m.apply)(&mut f, &mut launch);
        f.start(&launch);
        let (code, report) = f.verify_json(&[]);
        let got = failing(&report);
        let message_ok = m.message.is_none_or(|want| messages(&report).iter().any(|s| s.contains(want)));
        if code == 1 && got == set(m.expect) && message_ok {
            caught += 1;
        } else {
            wrong.push(format!(
                "{}: exit {code}, failing {got:?}, expected {:?}\n{:?}",
                m.name,
                m.expect,
                messages(&report)
            ));
        }
        assert!(
            !serde_json::to_string(&report).unwrap().contains(&f.secret),
            "{}: the report shows the secret",
            m.name
        );
        f.stop(&launch);
    }
    eprintln!("mutants caught: {caught} / {}", all.len());
    assert!(wrong.is_empty(), "mutants not caught as expected:\n{}", wrong.join("\n"));
}

#[test]
fn processes_inside_cannot_talk_a_failing_check_into_passing() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let mut launch = f.launch();
    launch.set_opt("--user", "65534", "0:0").drop_opt("--read-only", false);
    // Rename itself, plant symlinks to the host's view of `/`, then run an undeclared listener
    // that calls itself httpd, like the declared service.
    let script = "printf sleep > /proc/self/comm; ln -s / /etc/hostlink; ln -s /usr/bin /etc/ubin; \
                  printf 'nobody:x:0:0::/:/bin/sh\\n' > /etc/passwd.fake; \
                  exec -a httpd /bin/busybox -f -p 9000 -h /";
    launch.command = vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script.into()];
    f.start(&launch);
    let pid = container_pid(&launch.name);
    let ready = || {
        let link = std::fs::read_link(format!("/proc/{pid}/root/etc/hostlink")).ok();
        link.as_deref() == Some(std::path::Path::new("/"))
            && galley::audit::kernel::listeners(pid).is_ok_and(|found| found.iter().any(|l| l.port == 9000))
    };
    assert!(wait_for(ready), "the container did not plant its symlink and listener");
    let (code, report) = f.verify_json(&[]);
    assert_eq!(code, 1, "{report:#}");
    // Nothing listens behind the declared port either: its forwarded connections are refused.
    let expected = set(&["4.1 user", "5.12 read-only root", "5.8 listening ports", "galley forwarded ports"]);
    assert_eq!(failing(&report), expected, "{report:#}");
    let messages = messages(&report);
    assert!(messages.iter().any(|m| m.contains(":9000/tcp")), "{messages:?}");
    // The host's setuid files, reachable only by following the planted symlinks, are not seen.
    assert!(!messages.iter().any(|m| m.contains("hostlink") || m.contains("ubin")), "{messages:?}");
}

#[test]
fn image_scan_finds_setuid_files_and_root_without_running_the_image() {
    if !runtime_available() {
        return;
    }
    let mut f = Fixture::new();
    let out = f.galley(&["verify", "--image", &f.image.clone(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let bad = f.build_image("suid", &[("/usr/bin/sudo", "4755"), ("/bin/sg", "2755")]);
    let out = f.galley(&["verify", "--image", &bad, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failing(&report), set(&["4.8 setuid files"]), "{report:#}");
    let messages = messages(&report).join("\n");
    assert!(messages.contains("/usr/bin/sudo is setuid/setgid"), "{messages}");
    assert!(messages.contains("/usr/bin/sudo is a privilege tool"), "{messages}");
    assert!(messages.contains("/bin/sg is setuid/setgid"), "{messages}");
    let ps = run("podman", &["ps", "-a", "--filter", &format!("ancestor={bad}"), "--format", "{{.ID}}"]);
    assert!(ps.stdout.is_empty(), "the image was run");
}

#[test]
fn sarif_and_text_name_the_failing_check() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let mut launch = f.launch();
    launch.opt(&["--cap-add", "SYS_ADMIN"]);
    f.start(&launch);
    // A stray container under the project's labels is reported too.
    let mut stray = f.launch();
    stray.name = format!("{}-stray", stray.name);
    stray.set_opt("--label", "io.galley.sandbox=", "io.galley.sandbox=rogue");
    f.start(&stray);
    let (code, report) = f.verify_json(&[]);
    assert_eq!(code, 1);
    assert!(messages(&report).iter().any(|m| m.contains("-stray claims no sandbox declared")), "{report:#}");
    f.stop(&stray);

    let out = f.galley(&["verify", "--format", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif"));
    let run0 = &sarif["runs"][0];
    assert!(run0["tool"]["driver"]["rules"].as_array().unwrap().iter().any(|r| r["id"] == "5.3 capabilities"));
    let results = run0["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["ruleId"] == "5.3 capabilities" && r["level"] == "error"), "{results:#?}");
    assert!(results.iter().any(|r| r["message"]["text"].as_str().unwrap().contains("SYS_ADMIN")));

    let out = f.galley(&["verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("FAIL  5.3 capabilities"), "{text}");
    assert!(text.contains("PASS  5.4 privileged"), "{text}");
    assert!(text.contains("error[5.3 capabilities]") && text.contains("  help: "), "{text}");
}

#[test]
fn a_sandbox_without_network_passes_and_fails_once_attached_to_one() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::with_network(false);
    let launch = f.launch();
    assert!(launch.opts.windows(2).any(|w| w == ["--network", "none"]));
    // No port is declared, so the declared service's listener is an undeclared one: run a
    // silent process instead.
    let mut quiet = launch.clone();
    quiet.command = ["/bin/busybox", "sleep", "1000000"].map(String::from).to_vec();
    f.start(&quiet);
    let (code, report) = f.verify_json(&[]);
    assert_eq!((code, failing(&report)), (0, set(&[])), "{report:#}");
    f.stop(&quiet);

    run("podman", &["network", "create", "--internal", &f.network()]);
    let mut attached = quiet.clone();
    attached.set_opt("--network", "none", &f.network());
    f.start(&attached);
    let (code, report) = f.verify_json(&[]);
    // The network also has an open host side, and gives the 'none sandbox an interface.
    let expected = set(&["5.9 network", "galley host side", "galley no route out"]);
    assert_eq!((code, failing(&report)), (1, expected), "{report:#}");
}

#[test]
fn a_sandbox_that_is_not_running_is_a_usage_error() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let out = f.galley(&["verify", SANDBOX]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such sandbox running: app"));
    let out = f.galley(&["verify", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.galley(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is running in instance `default`"));
    std::fs::write(f.project_dir().join("galley.ncl"), "{ name = 1 }").unwrap();
    assert_eq!(f.galley(&["verify"]).status.code(), Some(2));
}

/// A sandbox started with the runner's own invocation, when the runtime is here.
fn started_like_the_runner() -> Option<(Fixture, Launch)> {
    if !runtime_available() {
        return None;
    }
    let f = Fixture::new();
    let launch = f.launch();
    f.start(&launch);
    Some((f, launch))
}

/// The attack: the secret's source is unset (or rotated) by the time verify runs, so a check
/// that re-resolves sources has nothing to search for and passed, though the value apply
/// delivered sits in a process's argv.
#[test]
fn a_delivered_secret_in_argv_is_found_with_its_env_source_unset_at_verify_time() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let mut launch = f.launch();
    let script = "/bin/busybox httpd -f -p 8080 -h /; :";
    launch.command = ["/bin/busybox", "sh", "-c", script, "sh", &f.secret].map(String::from).to_vec();
    f.start(&launch);
    let (code, report) = f.verify_json_unset(&[], &[SECRET_VAR]);
    assert_eq!((code, failing(&report)), (1, set(&["galley secret exposure"])), "{report:#}");
    assert!(messages(&report).iter().any(|m| m.contains("secret TOKEN visible in cmdline of pid")), "{report:#}");
    assert!(!serde_json::to_string(&report).unwrap().contains(&f.secret), "the report shows the secret");
}

/// With no delivered value to read back, the secret check has nothing to search for: it says it
/// did not run and fails, never passes.
#[test]
fn with_no_delivered_value_readable_the_secret_check_says_not_run() {
    let Some((f, _launch)) = started_like_the_runner() else { return };
    std::fs::remove_file(f.delivered("TOKEN")).unwrap();
    let (code, report) = f.verify_json(&[]);
    assert_eq!((code, failing(&report)), (1, set(&["galley secret exposure"])), "{report:#}");
    assert!(messages(&report).iter().any(|m| m.contains("check not run: no delivered value of secret TOKEN")), "{report:#}");
    let checks = report["sandboxes"][0]["checks"].as_array().unwrap();
    let secret = checks.iter().find(|c| c["id"] == "galley secret exposure").unwrap();
    assert_eq!((secret["passed"].as_bool(), secret["run"].as_bool()), (Some(false), Some(false)), "{report:#}");
    let text = f.galley(&["verify"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("NOT RUN  galley secret exposure"), "{stdout}");
}

/// The attack: the CPU quota is raised after start (`podman update --cpus`) or lifted in the
/// kernel (a cgroup quota of -1) where podman's record does not show it.
#[test]
fn cpu_limit_drift_after_start_fails_the_cpu_check() {
    let Some((f, launch)) = started_like_the_runner() else { return };
    assert_eq!(f.verify_json(&[]).0, 0);

    run("podman", &["update", "--cpus", "2", &launch.name]);
    let (code, report) = f.verify_json(&[]);
    assert_eq!((code, failing(&report)), (1, set(&["5.11 cpu"])), "{report:#}");
    assert!(messages(&report).iter().any(|m| m == "the kernel enforces another CPU quota"), "{report:#}");

    // Back to the declared quota through podman, then lifted in the kernel alone.
    run("podman", &["update", "--cpus", "0.5", &launch.name]);
    assert_eq!(f.verify_json(&[]).0, 0);
    let pid = container_pid(&launch.name);
    assert_eq!(galley::audit::kernel::cpu_quota(pid), Ok(Some(500_000_000)));
    lift_cpu_quota(pid);
    assert_eq!(galley::audit::kernel::cpu_quota(pid), Ok(None));
    let (code, report) = f.verify_json(&[]);
    assert_eq!((code, failing(&report)), (1, set(&["5.11 cpu"])), "{report:#}");
    let findings = report["sandboxes"][0]["findings"].as_array().unwrap();
    assert!(findings.iter().any(|x| x["observed"] == "unlimited" && x["message"] == "the kernel enforces another CPU quota"), "{report:#}");
}

/// Write "no quota" into the cgroup of `pid` (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`).
fn lift_cpu_quota(pid: u32) {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.is_empty() && std::path::Path::new(&format!("/sys/fs/cgroup{path}/cpu.max")).exists() {
            std::fs::write(format!("/sys/fs/cgroup{path}/cpu.max"), "max").unwrap();
            return;
        }
        if controllers.split(',').any(|c| c == "cpu") {
            std::fs::write(format!("/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us"), "-1").unwrap();
            return;
        }
    }
    panic!("no cpu cgroup for pid {pid}: {cgroup}");
}

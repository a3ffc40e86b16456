//! `galley verify` against real podman containers: a sandbox started the way the runner starts
//! it passes; each single violation, started by hand under the sandbox's labels, fails exactly
//! the check named after it; processes inside cannot talk a failing check into passing.

mod support {
    pub mod verify;
}

use std::collections::BTreeSet;

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

/// One violation of the manifest and the checks it must fail.
struct Mutant {
    name: &'static str,
    expect: &'static [&'static str],
    /// A substring one finding's message must hold.
    message: Option<&'static str>,
    apply: Box<dyn Fn(&mut Fixture, &mut Launch)>,
}

fn mutant(name: &'static str, expect: &'static [&'static str], apply: impl Fn(&mut Fixture, &mut Launch) + 'static) -> Mutant {
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
        mutant("seccomp=unconfined", &["5.21 seccomp"], |_, l| {
            l.set_opt("--security-opt", "seccomp=", "seccomp=unconfined");
        }),
        mutant("no no-new-privileges", &["5.25 no-new-privileges"], |_, l| {
            l.drop_opt("--security-opt", true);
        }),
        mutant("port on 0.0.0.0", &["5.13 bind to host interface"], |f, l| {
            let p = format!("0.0.0.0:{}:8080/tcp", f.host_port);
            l.set_opt("-p", "127.0.0.1:", &p);
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
        mutant("pid host", &["5.15 pid namespace"], |_, l| {
            l.opt(&["--pid", "host"]);
        }),
        mutant("ipc host", &["5.16 ipc namespace"], |_, l| {
            l.opt(&["--ipc", "host"]);
        }),
        mutant("uts host", &["5.20 uts namespace"], |_, l| {
            l.opt(&["--uts", "host"]);
        }),
        mutant("device passed in", &["5.17 devices"], |_, l| {
            l.opt(&["--device", "/dev/null:/dev/xnull"]);
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
        mutant("host network", &["5.9 network", "5.13 bind to host interface", "5.8 listening ports"], |_, l| {
            l.set_opt("--network", "galley-", "host");
        }),
        mutant("other image", &["4.x image digest"], |f, l| {
            let image = f.build_image("other", &[("/bin/extra", "0755")]);
            l.opt(&["--label", &format!("io.galley.image={}", f.digest)]);
            l.image = image;
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
            wrong.push(format!("{}: exit {code}, failing {got:?}, expected {:?}\n{:?}", m.name, m.expect, messages(&report)));
        }
        assert!(!serde_json::to_string(&report).unwrap().contains(&f.secret), "{}: the report shows the secret", m.name);
        f.stop(&launch);
    }
    eprintln!("mutants caught: {caught} / {}", all.len());
    assert!(wrong.is_empty(), "mutants not caught as expected:\n{}", wrong.join("\n"));
}

//! The inspect-based checks on podman records written by hand: a record of a container started
//! as the runner starts it passes, and each single change fails exactly its check.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::domain::{Cpus, PortBinding as Port, Protocol, SeccompChoice};
use crate::model::{Project, Resources, Sandbox, Tmpfs, Trust, Volume};

const SECRET: &str = "hunter2-secret-value";

/// The pinned image's digest in these tests.
fn image_digest() -> crate::domain::Digest {
    crate::domain::Digest::of(b"image")
}

/// The value apply delivered for the manifest's `TOKEN`.
fn fixed() -> SecretValues {
    SecretValues::new(vec![("TOKEN".into(), crate::secrets::SecretValue::new(SECRET.into()))])
}

pub(crate) fn manifest() -> SandboxManifest {
    let sandbox = Sandbox {
        image: "app".into(),
        trust: Trust::Untrusted,
        command: None,
        env: BTreeMap::new(),
        ports: vec![Port { container: 8080, host: 18080, address: "127.0.0.1".parse().unwrap(), protocol: Protocol::Tcp }],
        network: Network::Isolated,
        secrets: [("TOKEN".to_owned(), crate::model::Secret::Env("T".into()))].into(),
        seccomp: SeccompChoice::Custom(json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [] })),
        capabilities: vec!["NET_BIND_SERVICE".into()],
        user: "1000:1000".parse().unwrap(),
        read_only: true,
        tmpfs: vec![Tmpfs { path: "/tmp".parse().unwrap(), size: "64m".parse().unwrap(), mode: "1777".into() }],
        volumes: vec![Volume { name: "work".parse().unwrap(), path: "/work".parse().unwrap(), read_only: false }],
        resources: Resources { memory: "128m".parse().unwrap(), cpus: Cpus::Quota(0.5), pids: 64, nofile: Some(1024), nproc: None },
    };
    let project = Project {
        name: "p".parse().unwrap(),
        registries: BTreeMap::new(),
        images: BTreeMap::new(),
        sandboxes: [("app".to_owned(), sandbox)].into(),
    };
    manifest::resolve(&project, "app", Some(image_digest()), Path::new("/nonexistent")).unwrap()
}

/// podman's record of the container the runner starts for `m`, its profile written to `dir`.
fn record(m: &SandboxManifest, dir: &Path) -> Value {
    // The runner keeps secret files on a tmpfs; /dev/shm is one on Linux.
    let secrets = Path::new("/dev/shm");
    let profile = dir.join("seccomp.json");
    std::fs::write(&profile, br#"{"syscalls":[],"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
    json!({
        "Name": "galley-p-default-app",
        "ImageDigest": image_digest().to_string(),
        "EffectiveCaps": ["CAP_NET_BIND_SERVICE"],
        "BoundingCaps": ["CAP_NET_BIND_SERVICE"],
        "Mounts": [
            { "Type": "volume", "Name": "p-default-work", "Source": "/var/lib/x", "Destination": "/work", "RW": true },
            { "Type": "bind", "Source": secrets.join("TOKEN"), "Destination": "/run/secrets/TOKEN", "RW": false },
        ],
        "NetworkSettings": { "Networks": { "galley_p_default": {} } },
        "Config": {
            "User": "1000:1000",
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/app"],
            "Labels": { "io.galley.sandbox": "app", "io.galley.manifest": m.digest() },
        },
        "HostConfig": {
            "Privileged": false,
            "SecurityOpt": ["no-new-privileges", format!("seccomp={}", profile.display())],
            "ReadonlyRootfs": true,
            "PidMode": "private", "IpcMode": "shareable", "UTSMode": "private", "UsernsMode": "", "NetworkMode": "bridge",
            "Devices": [],
            // The sandbox has no egress: galley forwards its port, podman publishes nothing.
            "PortBindings": {},
            "Tmpfs": { "/tmp": "size=64m", "/run": "rw", "/var/tmp": "rw" },
            "Memory": 134217728, "NanoCpus": 500000000, "PidsLimit": 64,
            "Ulimits": [{ "Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 1024 }],
        },
    })
}

fn failing(inspect: Value, m: &SandboxManifest) -> BTreeSet<&'static str> {
    let o = Observed { name: "c".into(), sandbox: "app".into(), inspect };
    let cx = Context { instance: "default".into(), internal: [("galley_p_default".to_owned(), true)].into(), ..Context::default() };
    let mut sink = Sink::new("app", "c");
    run(&o, m, &cx, &fixed(), &mut sink);
    assert!(!format!("{:?}", sink.findings).contains(SECRET), "a finding shows the secret");
    sink.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| f.check).collect()
}

#[test]
fn a_record_of_the_runners_container_passes_and_each_change_fails_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest();
    let good = record(&m, dir.path());
    assert_eq!(failing(good.clone(), &m), BTreeSet::new());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/HostConfig/Privileged", json!(true), PRIVILEGED),
        ("/EffectiveCaps", json!(["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]), CAPABILITIES),
        ("/HostConfig/SecurityOpt", json!(["no-new-privileges", "seccomp=unconfined"]), SECCOMP),
        ("/HostConfig/SecurityOpt", json!(["no-new-privileges"]), SECCOMP),
        ("/HostConfig/ReadonlyRootfs", json!(false), READ_ONLY),
        ("/Config/User", json!("0"), USER),
        ("/HostConfig/PidMode", json!("host"), PID_NS),
        ("/HostConfig/IpcMode", json!("host"), IPC_NS),
        ("/HostConfig/UTSMode", json!("host"), UTS_NS),
        ("/HostConfig/UsernsMode", json!("host"), USER_NS),
        ("/HostConfig/Devices", json!([{ "PathOnHost": "/dev/kvm" }]), DEVICES),
        ("/HostConfig/PortBindings", json!({ "8080/tcp": [{ "HostIp": "0.0.0.0", "HostPort": "18080" }] }), PORTS),
        ("/HostConfig/Memory", json!(0), MEMORY),
        ("/HostConfig/NanoCpus", json!(0), CPU),
        ("/HostConfig/PidsLimit", json!(2048), PIDS),
        ("/HostConfig/Ulimits", json!([]), ULIMITS),
        ("/Config/Env", json!([format!("LEAK={SECRET}")]), SECRETS),
        ("/Config/Cmd", json!(["/bin/app", SECRET]), SECRETS),
        ("/ImageDigest", json!("sha256:bbbb"), IMAGE),
        ("/Config/Labels/io.galley.manifest", json!("sha256:0000"), MANIFEST),
        ("/NetworkSettings/Networks", json!({ "galley_p_default": {}, "podman": {} }), NETWORK),
        ("/Mounts/1/Destination", json!("/run/secrets/OTHER"), MOUNTS),
        ("/Mounts/1/Source", json!("/etc/TOKEN"), MOUNTS),
        ("/Mounts/1/Source", json!("/dev/shm/OTHER"), MOUNTS),
        ("/Mounts/1/Source", json!("/run/podman/podman.sock"), RUNTIME_SOCKET),
    ];
    for (pointer, value, check) in cases {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        assert_eq!(failing(bad, &m), [check].into(), "{pointer}");
    }
}

#[test]
fn a_routed_network_fails_an_isolated_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest();
    let o = Observed { name: "c".into(), sandbox: "app".into(), inspect: record(&m, dir.path()) };
    let cx = Context { instance: "default".into(), internal: [("galley_p_default".to_owned(), false)].into(), ..Context::default() };
    let mut sink = Sink::new("app", "c");
    run(&o, &m, &cx, &fixed(), &mut sink);
    assert_eq!(sink.findings.iter().map(|f| f.check).collect::<Vec<_>>(), [NETWORK]);
}

//! `podman kube play` runs what `galley export kube` wrote, for the subset podman supports: a
//! busybox image built here from scratch serves httpd, and answers on a loopback port.
//!
//! Two test-only additions stand for what a cluster operator would do: a Secret object with a
//! known test value (instead of `kubectl create secret`), and a hostPort on 127.0.0.1 (podman's
//! way to reach a pod from the host; the export itself never sets hostPort, which the restricted
//! profile forbids).

mod kube_support;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kube_support::*;
use serde_json::{Value, json};

const PAGE: &str = "served-from-galley-export";
const SECRET_VALUE: &str = "podman-test-secret-value";

fn runtime() -> String {
    std::env::var("GALLEY_OCI_RUNTIME").ok().filter(|r| !r.is_empty()).unwrap_or_else(|| "runc".into())
}

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn check(program: &str, args: &[&str]) -> String {
    let out = run(program, args, &[]);
    assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// Everything the test creates, removed even when an assertion fails.
#[derive(Default)]
struct Cleanup {
    buildah_container: Option<String>,
    image: Option<String>,
    played: Option<std::path::PathBuf>,
    pod: Option<String>,
    volumes: Vec<String>,
    secret: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program).args(args).output();
        };
        if let Some(p) = &self.played {
            quiet("podman", &["kube", "down", &p.to_string_lossy()]);
        }
        if let Some(p) = &self.pod {
            quiet("podman", &["pod", "rm", "-f", p]);
        }
        for v in &self.volumes {
            quiet("podman", &["volume", "rm", "-f", v]);
        }
        if let Some(s) = &self.secret {
            quiet("podman", &["secret", "rm", s]);
        }
        if let Some(c) = &self.buildah_container {
            quiet("buildah", &["rm", c]);
        }
        if let Some(i) = &self.image {
            quiet("podman", &["rmi", i]);
        }
    }
}

fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn podman_kube_play_serves_the_exported_sandbox() {
    for tool in ["podman", "buildah"] {
        if !have(tool, "--version") {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return skip("/bin/busybox (Debian's busybox-static) is not installed");
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let id = format!("{}{}", std::process::id(), nanos % 100_000);
    let (project, sandbox, volume) = (format!("kp{id}"), format!("web{id}"), format!("data{id}"));
    let image = format!("localhost/galley/{project}/site:latest");
    let mut cleanup = Cleanup::default();
    let work = tempfile::tempdir().unwrap();

    // The image: busybox and one page, from scratch.
    let www = work.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), PAGE).unwrap();
    let ctr = check("buildah", &["from", "scratch"]);
    cleanup.buildah_container = Some(ctr.clone());
    check("buildah", &["copy", &ctr, "/bin/busybox", "/bin/busybox"]);
    check("buildah", &["copy", &ctr, &www.to_string_lossy(), "/srv/www"]);
    cleanup.image = Some(image.clone());
    check("buildah", &["commit", "-q", &ctr, &image]);

    // The project and its export.
    let config = format!(
        r#"{{
  name = "{project}",
  images.site = {{}},
  sandboxes.{sandbox} = {{
    image = "site",
    user = "1000:1000",
    network = 'isolated,
    command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"],
    ports = [{{ container = 8080, host = 18080 }}],
    secrets.API_TOKEN = {{ env = "KP_TOKEN" }},
    volumes = [{{ name = "{volume}", path = "/data" }}],
    resources = {{ memory = "64m", cpus = 0.5 }},
  }},
}}
"#
    );
    let dir = fixture(&config);
    let out_dir = work.path().join("out");
    let out = export(dir.path(), &["--out", &out_dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = std::fs::read_to_string(out_dir.join(format!("galley-{project}-default.yaml"))).unwrap();

    let secret = format!("{sandbox}-api-token");
    let port = free_port();
    let mut docs = vec![json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": secret },
        "stringData": { "API_TOKEN": SECRET_VALUE },
    })];
    for mut doc in documents(&yaml) {
        if doc["kind"] == "Deployment" {
            let ports = &mut doc["spec"]["template"]["spec"]["containers"][0]["ports"][0];
            ports["hostIP"] = json!("127.0.0.1");
            ports["hostPort"] = json!(port);
        }
        docs.push(doc);
    }
    let play = work.path().join("play.yaml");
    // YAML holds JSON: one document per line.
    let text: String = docs.iter().map(|d: &Value| format!("---\n{d}\n")).collect();
    std::fs::write(&play, text).unwrap();

    // This host's hard limits are below podman's defaults; lower them for the test's containers.
    let conf = work.path().join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n").unwrap();
    cleanup.played = Some(play.clone());
    cleanup.pod = Some(format!("{sandbox}-pod-0"));
    cleanup.volumes = vec![volume.clone(), secret.clone()];
    cleanup.secret = Some(secret.clone());
    let rt = runtime();
    let played = run("podman", &["--runtime", &rt, "kube", "play", &play.to_string_lossy()], &[("CONTAINERS_CONF", &conf)]);
    assert!(played.status.success(), "podman kube play: {}{}", stdout(&played), stderr(&played));

    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match http_get(port) {
            Some(b) if b.contains(PAGE) => break b,
            _ if Instant::now() > deadline => panic!("no answer on 127.0.0.1:{port}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(body.starts_with("HTTP/1."), "{body}");

    // What podman does enforce from the pod spec.
    let names = check("podman", &["ps", "--format", "{{.Names}}"]);
    let container = names.lines().find(|n| n.starts_with(&sandbox) && n.ends_with(&format!("-{sandbox}"))).unwrap();
    assert_eq!(check("podman", &["exec", container, "/bin/busybox", "id", "-u"]), "1000");
    let touch = run("podman", &["exec", container, "/bin/busybox", "touch", "/x"], &[]);
    assert!(!touch.status.success(), "root filesystem is writable");
    let status = check("podman", &["exec", container, "/bin/busybox", "cat", "/proc/self/status"]);
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    let env = check("podman", &["exec", container, "/bin/busybox", "env"]);
    assert!(!env.contains(SECRET_VALUE), "secret in the environment");
    let limit = check("podman", &["inspect", container, "--format", "{{.HostConfig.Memory}}"]);
    assert_eq!(limit, (64u64 << 20).to_string());
}

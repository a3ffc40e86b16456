//! `galley serve`: the webhook endpoint driven with curl (GitHub's signature test vector and
//! each forgery), and pull-request previews of the web example from a real bare git repository
//! on real podman, with commit statuses received by a loopback API server the test runs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use galley::serve::signature::sign;
#[allow(unused_imports)]
use support::runner::TestProject;
use support::runner::{free_port, http_get, podman, podman_ok, run};

const VECTOR_SECRET: &str = "It's a Secret to Everybody";
const VECTOR_BODY: &str = "Hello, World!";
const VECTOR_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
const REPO: &str = "octo-org/site";

/// A loopback stand-in for GitHub's API: records every request (method, path, JSON body) and
/// answers 201.
struct Api {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String, serde_json::Value, String)>>>,
}

impl Api {
    fn start() -> Api {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                let (mut length, mut auth) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        auth = h["authorization:".len()..].trim().to_owned();
                    }
                }
                let mut body = vec![0; length];
                let _ = r.read_exact(&mut body);
                // Through a proxy the target is absolute; keep the path.
                let path = target
                    .find("/repos/")
                    .map_or(target.clone(), |i| target[i..].to_owned());
                s.lock().unwrap().push((
                    method,
                    path,
                    serde_json::from_slice(&body).unwrap_or_default(),
                    auth,
                ));
                let mut w = conn;
                let _ = w.write_all(
                    b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        Api { port, seen }
    }

    /// `(state, sha)` of every status received, in order.
    fn statuses(&self) -> Vec<(String, String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p, _, _)| {
                m == "POST" && p.starts_with(&format!("/repos/{REPO}/statuses/"))
            })
            .map(|(_, p, b, _)| {
                (
                    b["state"].as_str().unwrap_or("").to_owned(),
                    p.rsplit('/').next().unwrap().to_owned(),
                    b["description"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

/// A running `galley serve`, stopped with SIGTERM on drop; its records (stderr) go to a file.
struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    fn start(config: &Path, home: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let log = home.join(format!(
            "serve-{port}-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let mut c = Command::new(env!("CARGO_BIN_EXE_galley"));
        c.args(["serve", "--config"])
            .arg(config)
            .env("GALLEY_HOME", home)
            .env("NO_COLOR", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Server { child, port, log };
        let start = Instant::now();
        while http_get(port, "/healthz").map_or(true, |r| !r.contains("ok")) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "galley serve did not start: {}",
                s.records_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn records_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        self.records_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn rejections(&self) -> Vec<(String, String)> {
        self.records()
            .iter()
            .filter(|r| r["event"] == "rejected")
            .map(|r| {
                (
                    r["reason"].as_str().unwrap_or("").to_owned(),
                    r["peer"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// POST a delivery with curl; returns (HTTP status, body).
    fn post(
        &self,
        repo: &str,
        event: &str,
        delivery: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("body");
        std::fs::write(&file, body).unwrap();
        let url = format!("http://127.0.0.1:{}/hooks/github/{repo}", self.port);
        let mut args = vec![
            "-sS".to_owned(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            "-X".into(),
            "POST".into(),
        ];
        args.extend([
            "-H".into(),
            format!("X-GitHub-Event: {event}"),
            "-H".into(),
            "Content-Type: application/json".into(),
        ]);
        if let Some(d) = delivery {
            args.extend(["-H".into(), format!("X-GitHub-Delivery: {d}")]);
        }
        if let Some(s) = signature {
            args.extend(["-H".into(), format!("X-Hub-Signature-256: {s}")]);
        }
        args.extend(["--data-binary".into(), format!("@{}", file.display()), url]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run("curl", &argv);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) with the child's own pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_config(dir: &Path, listen: u16, clone_url: &str, api: u16, extra: &str) -> PathBuf {
    let path = dir.join("serve.ncl");
    std::fs::write(
        &path,
        format!(
            r#"{{
  listen = "127.0.0.1:{listen}",
  repositories."{REPO}" = {{
    clone_url = "{clone_url}",
    webhook_secret = {{ file = "webhook-secret" }},
    api_token = {{ file = "api-token" }},
  }},
  api_base = "http://127.0.0.1:{api}",
  api_allow_private = true,
  max_body_bytes = 4096,
  {extra}
}}
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn webhook_verifies_githubs_vector_and_rejects_and_records_each_forgery() {
    if !support::require_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("webhook-secret"), VECTOR_SECRET).unwrap();
    std::fs::write(dir.path().join("api-token"), "t0ken").unwrap();
    let api = Api::start();
    let port = free_port();
    let config = serve_config(dir.path(), port, "/nonexistent", api.port, "");
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&config, home.path(), port, &[]);

    assert_eq!(
        server
            .post(
                REPO,
                "ping",
                Some("d-vector"),
                Some(VECTOR_SIG),
                VECTOR_BODY.as_bytes()
            )
            .0,
        200,
        "GitHub's vector verifies"
    );
    let forged: [(&str, Option<String>, &[u8], u16, &str); 7] = [
        (
            "one byte changed",
            Some(VECTOR_SIG.into()),
            b"Hello, World?",
            401,
            "signature mismatch",
        ),
        (
            "truncated signature",
            Some(VECTOR_SIG[..VECTOR_SIG.len() - 1].into()),
            VECTOR_BODY.as_bytes(),
            401,
            "signature malformed",
        ),
        (
            "sha1 only",
            Some("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59".into()),
            VECTOR_BODY.as_bytes(),
            401,
            "signature malformed",
        ),
        (
            "missing header",
            None,
            VECTOR_BODY.as_bytes(),
            401,
            "signature missing",
        ),
        (
            "empty secret",
            Some(sign(b"", VECTOR_BODY.as_bytes())),
            VECTOR_BODY.as_bytes(),
            401,
            "signature mismatch",
        ),
        (
            "oversized",
            Some(sign(VECTOR_SECRET.as_bytes(), &[b'x'; 5000])),
            &[b'x'; 5000],
            413,
            "body too large",
        ),
        (
            "replay",
            Some(VECTOR_SIG.into()),
            VECTOR_BODY.as_bytes(),
            409,
            "replayed delivery",
        ),
    ];
    for (i, (what, sig, body, want, _)) in forged.iter().enumerate() {
        let delivery = if *what == "replay" {
            "d-vector".to_owned()
        } else {
            format!("d-{i}")
        };
        let (code, answer) = server.post(REPO, "ping", Some(&delivery), sig.as_deref(), body);
        assert_eq!(code, *want, "{what}");
        assert!(
            answer.is_empty(),
            "{what}: a rejection tells the sender nothing, got {answer:?}"
        );
    }
    let (code, answer) = server.post(
        "someone/else",
        "ping",
        Some("d-x"),
        Some(VECTOR_SIG),
        VECTOR_BODY.as_bytes(),
    );
    assert_eq!((code, answer.as_str()), (404, ""), "unknown repository");
    let signed = |b: &[u8]| sign(VECTOR_SECRET.as_bytes(), b);
    assert_eq!(
        server
            .post(
                REPO,
                "issues",
                Some("d-issues"),
                Some(&signed(b"{}")),
                b"{}"
            )
            .0,
        202,
        "an event galley does not handle"
    );

    let rejected = server.rejections();
    let mut want: Vec<&str> = forged.iter().map(|f| f.4).collect();
    want.push("unknown repository");
    assert_eq!(
        rejected.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        want,
        "{}",
        server.records_text()
    );
    assert!(
        rejected
            .iter()
            .all(|(_, peer)| peer.starts_with("127.0.0.1:")),
        "each rejection names its peer: {rejected:?}"
    );
    assert!(
        !server.records_text().contains(VECTOR_SECRET),
        "the secret is never recorded"
    );
    assert!(api.statuses().is_empty(), "no status for a ping");
}

#[test]
fn serve_refuses_to_start_with_an_empty_webhook_secret_or_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("webhook-secret"), "").unwrap();
    std::fs::write(dir.path().join("api-token"), "t").unwrap();
    let config = serve_config(dir.path(), free_port(), "/x", 1, "");
    let home = tempfile::tempdir().unwrap();
    let out = support::galley_in(
        dir.path(),
        home.path(),
        &["serve", "--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("webhook_secret") && support::stderr(&out).contains("empty"),
        "{}",
        support::stderr(&out)
    );

    std::fs::write(&config, "{ repositories.\"not a repo\" = { clone_url = \"/x\", webhook_secret = { env = \"S\" } }, max_previews = 1.5 }").unwrap();
    let out = support::galley_in(
        dir.path(),
        home.path(),
        &["serve", "--check", "--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("serve.ncl")
            && support::stderr(&out).contains("not a GitHub repository name"),
        "{}",
        support::stderr(&out)
    );

    std::fs::write(
        &config,
        "let rec f = fun n => f (n + 1) in { repositories = {}, max_previews = f 0 }",
    )
    .unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .env("GALLEY_HOME", home.path())
        .env("GALLEY_EVAL_TIMEOUT_MS", "1500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the operator config is evaluated under the time limit"
    );
    assert!(
        support::stderr(&out).contains("time limit") || support::stderr(&out).contains("stack"),
        "{}",
        support::stderr(&out)
    );
}

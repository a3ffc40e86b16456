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
use support::git;
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
    seen: Arc<Mutex<Vec<Request>>>,
}

/// One request the API server received: method, path, JSON body, Authorization header.
type Request = (String, String, serde_json::Value, String);

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
    stopped: bool,
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
        let s = Server { child, stopped: false, port, log };
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

    /// The rejections in the audit log, read with `galley audit show`: (reason, source).
    fn rejections(&self, home: &Path) -> Vec<(String, String)> {
        audit_entries(home, &["--action", "webhook.rejected"])
            .iter()
            .map(|r| {
                let reason = r["reason"].as_str().unwrap_or("");
                let reason = reason.split(" (answered").next().unwrap_or("");
                (reason.to_owned(), r["source"].as_str().unwrap_or("").to_owned())
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

    /// Stop with `signal` (SIGTERM: a graceful stop; SIGKILL: a crash).
    fn kill(&mut self, signal: i32) {
        if self.stopped {
            return;
        }
        // SAFETY: kill(2) with the pid of a child not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let _ = self.child.wait();
        self.stopped = true;
    }

    fn stop(&mut self) {
        self.kill(libc::SIGTERM);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `galley ARGS` with GALLEY_HOME=`home`: (success, stdout, stderr).
fn galley(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .env("GALLEY_HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The entries `galley audit show --format json FILTERS` prints.
fn audit_entries(home: &Path, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["audit", "show", "--format", "json"];
    args.extend(filters);
    let (ok, out, err) = galley(home, &args);
    assert!(ok, "audit show: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["entries"].as_array().cloned().unwrap_or_default()
}

/// `galley audit verify` passes.
fn assert_audit_intact(home: &Path) {
    let (ok, out, err) = galley(home, &["audit", "verify"]);
    assert!(ok, "audit verify: {out}{err}");
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

/// A server for webhook tests, whose repository has the webhook secret `secret` and a clone URL
/// that is never fetched.
struct Hooks {
    server: Server,
    api: Api,
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Hooks {
    fn start(secret: &str) -> Hooks {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("webhook-secret"), secret).unwrap();
        std::fs::write(dir.path().join("api-token"), "t0ken").unwrap();
        let api = Api::start();
        let port = free_port();
        let config = serve_config(dir.path(), port, "/nonexistent", api.port, "");
        let home = tempfile::tempdir().unwrap();
        let server = Server::start(&config, home.path(), port, &[]);
        Hooks { server, api, home, _dir: dir }
    }
}

#[test]
fn webhook_verifies_githubs_vector_and_rejects_and_records_each_forgery() {
    if !support::require_tool("curl") {
        return;
    }
    let Hooks { mut server, api, home, _dir: _config } = Hooks::start(VECTOR_SECRET);

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
    type Forgery<'a> = (&'a str, Option<String>, &'a [u8], u16, &'a str);
    let forged: [Forgery; 7] = [
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

    let rejected = server.rejections(home.path());
    let mut want: Vec<&str> = forged.iter().map(|f| f.4).collect();
    want.push("unknown repository");
    assert_eq!(
        rejected.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        want,
        "{}",
        server.records_text()
    );
    assert!(
        rejected.iter().all(|(_, peer)| peer == "127.0.0.1"),
        "each rejection names its peer: {rejected:?}"
    );
    assert!(
        !server.records_text().contains(VECTOR_SECRET),
        "the secret is never recorded"
    );
    let log = std::fs::read_to_string(home.path().join("audit.log")).unwrap();
    assert!(
        !log.contains(VECTOR_SECRET) && !log.contains(VECTOR_BODY),
        "neither the secret nor a body is in the audit log"
    );
    let bad = audit_entries(home.path(), &["--action", "webhook.rejected"]);
    assert_eq!(
        bad[0]["actor"], "anonymous",
        "an unverified delivery id is not taken as the actor: {bad:?}"
    );
    let ok = audit_entries(home.path(), &["--action", "webhook.accepted"]);
    assert_eq!(ok[0]["actor"], "github:d-vector", "{ok:?}");
    server.stop();
    let runs = audit_entries(home.path(), &["--action", "serve"]);
    let outcomes: Vec<_> = runs.iter().map(|e| e["outcome"].as_str().unwrap_or("")).collect();
    assert_eq!(outcomes, ["started", "ok"], "serve's start and stop are logged: {runs:?}");
    assert!(runs.iter().all(|e| e["actor"].as_str().unwrap_or("").starts_with("cli:")), "{runs:?}");
    assert_audit_intact(home.path());
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

    std::fs::write(dir.path().join("webhook-secret"), "s").unwrap();
    let proxies = serve_config(dir.path(), free_port(), "/x", 1, r#"trusted_proxies = ["proxy.example"],"#);
    let out = support::galley_in(dir.path(), home.path(), &["serve", "--check", "--config", proxies.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert!(err.contains("serve.ncl") && err.contains("trusted_proxies") && err.contains("\"proxy.example\" is not an IP address"), "{err}");

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

// ---- previews on real podman, from a real bare git repository ----------------------------

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The web example as a pull request's repository: examples/web's site and sandbox, with its
/// base (a registry image) replaced by Debian's static busybox copied in, so the test needs no
/// registry. `sandbox_extra` is merged into the sandbox.
fn web_ncl(name: &str, sandbox_extra: &str) -> String {
    let example = std::fs::read_to_string(support::repo().join("examples/web/galley.ncl")).unwrap();
    assert!(example.contains("service_on 8080 18080") && example.contains("secrets.API_TOKEN"), "examples/web changed; update this test");
    format!(
        r#"let galley = import "galley/std.ncl" in
{{
  name = "{name}",
  images.web = {{
    files = [
      {{ src = "busybox", dst = "/bin/busybox", mode = "0755" }},
      {{ src = "site", dst = "/srv/www", uid = 1000, gid = 1000 }},
    ],
    users = [{{ name = "web", uid = 1000 }}],
    user = "web",
    workdir = "/srv/www",
    entrypoint = ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"],
    labels = {{ "io.galley.test.owner" = "{name}" }},
  }},
  sandboxes.web = galley.presets.service_on 8080 18080 & {{
    image = "web",
    user = "1000:1000",
    secrets.API_TOKEN = {{ env = "WEB_API_TOKEN" }},
    resources = {{ memory = "128m", cpus = 0.5, pids = 64 }},
    {sandbox_extra}
  }},
}}
"#
    )
}

/// A working repository and the bare repository galley fetches from (GitHub's side), with
/// `refs/pull/N/head` as GitHub keeps them.
struct Upstream {
    work: tempfile::TempDir,
    bare: tempfile::TempDir,
    pub name: String,
}


impl Upstream {
    fn new(tag: &str) -> Upstream {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("sv{}-{n}-{tag}", std::process::id());
        let (work, bare) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        git(work.path(), &["init", "-q", "-b", "main"]);
        git(bare.path(), &["init", "-q", "--bare"]);
        std::fs::copy("/bin/busybox", work.path().join("busybox")).expect("busybox-static is installed");
        Upstream { work, bare, name }
    }

    fn clone_url(&self) -> String {
        self.bare.path().display().to_string()
    }

    /// Commit galley.ncl (with `extra` in the sandbox) and a page saying `page` as pull request
    /// `pr`'s head; returns the commit.
    fn push(&self, pr: u64, galley_ncl: &str, page: &str) -> String {
        std::fs::create_dir_all(self.work.path().join("site")).unwrap();
        std::fs::write(self.work.path().join("site/index.html"), format!("<!doctype html><p>{page}</p>\n")).unwrap();
        std::fs::write(self.work.path().join("galley.ncl"), galley_ncl).unwrap();
        git(self.work.path(), &["add", "-A"]);
        git(self.work.path(), &["commit", "-q", "--allow-empty", "-m", page]);
        let sha = git(self.work.path(), &["rev-parse", "HEAD"]);
        git(self.work.path(), &["push", "-q", "--force", &self.clone_url(), &format!("HEAD:refs/pull/{pr}/head")]);
        sha
    }

    fn leftovers(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=io.galley.project={}", self.name);
        let args: Vec<&str> = match kind {
            "ps" => vec!["ps", "--all", "--format", "{{.Names}}", "--filter", &filter],
            k => vec![k, "ls", "--format", "{{.Name}}", "--filter", &filter],
        };
        podman_ok(&args).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for kind in ["ps", "network", "volume"] {
            let list = self.leftovers(kind);
            if !list.is_empty() {
                let mut args: Vec<&str> = if kind == "ps" { vec!["rm", "--force", "--time", "0"] } else { vec![kind, "rm", "--force"] };
                args.extend(list.iter().map(String::as_str));
                podman(&args);
            }
        }
        let tags = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &format!("reference=localhost/galley/{}/*", self.name)]);
        let ours = format!("localhost/galley/{}/", self.name);
        for tag in String::from_utf8_lossy(&tags.stdout).lines().filter(|l| l.starts_with(&ours)) {
            podman(&["rmi", tag]);
        }
    }
}

/// A `pull_request` delivery shaped like GitHub's (the fields galley reads and their neighbours).
fn pr_payload(action: &str, number: u64, sha: &str, head_repo: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": action,
        "number": number,
        "pull_request": {
            "url": format!("https://api.github.com/repos/{REPO}/pulls/{number}"),
            "number": number,
            "state": if action == "closed" { "closed" } else { "open" },
            "title": "a change",
            "user": { "login": "someone" },
            "head": { "label": "someone:topic", "ref": "topic", "sha": sha, "repo": { "full_name": head_repo, "clone_url": "https://evil.example/attacker.git" } },
            "base": { "label": "octo-org:main", "ref": "main", "sha": "0".repeat(40), "repo": { "full_name": REPO } },
        },
        "repository": { "full_name": REPO, "name": "site", "owner": { "login": "octo-org" }, "clone_url": "https://evil.example/attacker.git" },
        "sender": { "login": "someone" },
    }))
    .unwrap()
}

struct Previews {
    _dir: tempfile::TempDir,
    home: tempfile::TempDir,
    config: PathBuf,
    api: Api,
    port: u16,
    deliveries: std::cell::Cell<usize>,
}

const SECRET: &str = "whsec-test-5a1d";
const OPERATOR_TOKEN: &str = "operator-token-value-77c1";

impl Previews {
    fn new(up: &Upstream, extra: &str) -> Previews {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("webhook-secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("api-token"), "gh-token").unwrap();
        let api = Api::start();
        let port = free_port();
        let base = 21000 + (std::process::id() % 200) as u16 * 40 + (COUNTER.load(std::sync::atomic::Ordering::SeqCst) % 4) as u16 * 8;
        let extra = format!("host_ports = [{base}, {}], reconcile_seconds = 1, {extra}", base + 7);
        let config = serve_config(dir.path(), port, &up.clone_url(), api.port, &extra);
        Previews { _dir: dir, home: tempfile::tempdir().unwrap(), config, api, port, deliveries: std::cell::Cell::new(0) }
    }

    fn start(&self) -> Server {
        Server::start(&self.config, self.home.path(), self.port, &[("SERVE_TEST_API_TOKEN", OPERATOR_TOKEN)])
    }

    fn deliver(&self, server: &Server, action: &str, number: u64, sha: &str, head_repo: &str) {
        let body = pr_payload(action, number, sha, head_repo);
        let n = self.deliveries.get() + 1;
        self.deliveries.set(n);
        let (code, _) = server.post(REPO, "pull_request", Some(&format!("delivery-{n}")), Some(&sign(SECRET.as_bytes(), &body)), &body);
        assert_eq!(code, 202, "{action} #{number}: {}", server.records_text());
    }

    fn record(&self, number: u64) -> serde_json::Value {
        let path = self.home.path().join(format!("serve/previews/octo-org+site/pr-{number}.json"));
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Wait until pull request `number`'s record satisfies `done`; panics on a failure recorded
    /// instead, unless `failure_ok`.
    fn wait(&self, server: &Server, number: u64, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.record(number);
            if done(&r) {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(240), "pr {number}: {what} never happened; record {r}; log:\n{}", server.records_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn serving(&self, server: &Server, number: u64, sha: &str) -> (u16, String) {
        let r = self.wait(server, number, "serving", |r| r["applied"] == sha || (r["failure"].is_string() && r["head"] == sha));
        assert!(r["failure"].is_null(), "pr {number} failed: {}; log:\n{}", r["failure"], server.records_text());
        let url = r["url"].as_str().unwrap_or_else(|| panic!("no url: {r}")).to_owned();
        let port: u16 = url.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
        (port, url)
    }

    fn failed(&self, server: &Server, number: u64, sha: &str) -> String {
        let r = self.wait(server, number, "a failure", |r| r["head"] == sha && (r["failure"].is_string() || r["applied"] == sha));
        r["failure"].as_str().unwrap_or_else(|| panic!("pr {number} was applied, but the policy should refuse it: {r}")).to_owned()
    }
}

fn get_until(port: u16, want: &str) -> String {
    let start = Instant::now();
    loop {
        let got = http_get(port, "/").unwrap_or_default();
        if got.contains(want) || start.elapsed() > Duration::from_secs(30) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn previews_come_up_change_on_synchronize_stay_apart_and_leave_nothing_when_closed() {
    if !support::runtime_available() || !support::require_tools(&["git", "curl"]) {
        return;
    }
    let up = Upstream::new("web");
    let ncl = web_ncl(&up.name, "");
    let p = Previews::new(&up, r#"policy = { networks = ['none, 'isolated, 'egress], secrets.API_TOKEN = { env = "SERVE_TEST_API_TOKEN" } },"#);
    let server = p.start();

    let v1 = up.push(1, &ncl, "first version");
    p.deliver(&server, "opened", 1, &v1, REPO);
    let (port1, url1) = p.serving(&server, 1, &v1);
    assert!(get_until(port1, "first version").contains("first version"), "pr-1 answers on {url1}");
    let c1 = format!("galley_{}_pr-1_web", up.name);
    let secret = podman_ok(&["exec", &c1, "/bin/busybox", "cat", "/run/secrets/API_TOKEN"]);
    assert_eq!(secret, OPERATOR_TOKEN, "the secret comes from the operator's source, not the one the pull request wrote");
    let labels = podman_ok(&["inspect", "--format", "{{index .Config.Labels \"io.galley.preview\"}}", &c1]);
    assert!(labels.trim().ends_with(&format!(":{REPO}#1")), "{labels}");

    let v2 = up.push(1, &ncl, "second version");
    p.deliver(&server, "synchronize", 1, &v2, REPO);
    let (port1b, _) = p.serving(&server, 1, &v2);
    assert_eq!(port1b, port1, "a re-apply keeps the preview's host port");
    assert!(get_until(port1, "second version").contains("second version"), "synchronize changes what pr-1 serves");

    git(up.work.path(), &["checkout", "-q", "-b", "other", &v1]);
    let w1 = up.push(2, &ncl, "another pull request");
    p.deliver(&server, "opened", 2, &w1, REPO);
    let (port2, _) = p.serving(&server, 2, &w1);
    assert_ne!(port2, port1, "a second preview gets its own host port");
    assert!(get_until(port2, "another pull request").contains("another pull request"));
    assert!(get_until(port1, "second version").contains("second version"), "both serve at once");
    let ip1 = podman_ok(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", &c1]);
    let c2 = format!("galley_{}_pr-2_web", up.name);
    for ip in ip1.split_whitespace() {
        let out = podman(&["exec", &c2, "/bin/busybox", "wget", "-q", "-T", "3", "-O", "-", &format!("http://{ip}:8080/")]);
        assert!(!out.status.success(), "pr-2 reached pr-1 at {ip}: {}", String::from_utf8_lossy(&out.stdout));
    }

    p.deliver(&server, "closed", 1, &v2, REPO);
    p.deliver(&server, "closed", 2, &w1, REPO);
    for n in [1, 2] {
        p.wait(&server, n, "destroyed", |r| r["open"] == false && r["project"].is_null());
    }
    for kind in ["ps", "network", "volume"] {
        assert_eq!(up.leftovers(kind), Vec::<String>::new(), "closed previews leave no {kind}");
    }
    let run = p.home.path().join("run").join(&up.name);
    let files: Vec<_> = walk(&run);
    assert!(files.is_empty(), "no secret file is left: {files:?}");
    assert!(http_get(port1, "/").is_err(), "the host port is free again");

    let statuses = p.api.statuses();
    let states: Vec<(&str, &str)> = statuses.iter().map(|(s, sha, _)| (s.as_str(), sha.as_str())).collect();
    assert_eq!(
        states,
        vec![("pending", v1.as_str()), ("success", v1.as_str()), ("pending", v2.as_str()), ("success", v2.as_str()), ("pending", w1.as_str()), ("success", w1.as_str())],
        "statuses in order; none on close: {statuses:?}"
    );
    let seen = p.api.seen.lock().unwrap();
    assert!(seen.iter().all(|(_, _, b, auth)| auth == "Bearer gh-token" && b["context"] == "galley/preview"), "{seen:?}");
    assert!(seen.iter().any(|(_, _, b, _)| b["target_url"] == url1.as_str()), "success carries the preview's URL");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn policy_refuses_wider_previews_forks_get_no_secret_nor_network_and_a_looping_config_fails() {
    if !support::runtime_available() || !support::require_tools(&["git", "curl"]) {
        return;
    }
    let up = Upstream::new("policy");
    let p = Previews::new(&up, r#"policy = { secrets.API_TOKEN = { env = "SERVE_TEST_API_TOKEN" } },"#);
    let server = p.start();
    let isolated = "network = 'isolated,";
    let cases: [(u64, String, &str); 4] = [
        (11, web_ncl(&up.name, &format!("{isolated} capabilities = [\"NET_ADMIN\"],")), "G180"),
        (12, web_ncl(&up.name, "network | force = 'egress,"), "G181"),
        (13, web_ncl(&up.name, &format!("{isolated} resources.memory | force = \"1g\",")), "G184"),
        (14, "let rec f = fun n => f (n + 1) in { name = f 0 }".to_owned(), "G011"),
    ];
    // A config that never ends runs into the time limit (G011) or, on a loaded host, the
    // memory limit first (G012): either way the bounded evaluator stopped it.
    let names = |code: &str, text: &str| text.contains(code) || (code == "G011" && text.contains("G012"));
    let mut shas = Vec::new();
    for (n, ncl, _) in &cases {
        git(up.work.path(), &["checkout", "-q", "-B", &format!("b{n}")]);
        let sha = up.push(*n, ncl, &format!("pr {n}"));
        p.deliver(&server, "opened", *n, &sha, REPO);
        shas.push(sha);
    }
    let fork_sha = {
        git(up.work.path(), &["checkout", "-q", "-B", "fork"]);
        up.push(15, &web_ncl(&up.name, ""), "from a fork")
    };
    p.deliver(&server, "opened", 15, &fork_sha, "someone/site");
    for ((n, _, code), sha) in cases.iter().zip(&shas) {
        let failure = p.failed(&server, *n, sha);
        assert!(names(code, &failure), "pr {n}: {failure}");
        assert!(up.leftovers("ps").iter().all(|c| !c.contains(&format!("_pr-{n}_"))), "pr {n} got a container");
    }
    assert!(http_get(server.port, "/healthz").unwrap().contains("ok"), "the server keeps answering after a config that never ends");

    p.wait(&server, 15, "the fork's preview", |r| r["applied"] == fork_sha.as_str());
    let c = format!("galley_{}_pr-15_web", up.name);
    assert_eq!(podman_ok(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", &c]).trim(), "none", "a fork gets no network");
    let (ok, _) = (podman(&["exec", &c, "/bin/busybox", "test", "-e", "/run/secrets/API_TOKEN"]).status.success(), ());
    assert!(!ok, "a fork gets no secret");
    let applied = audit_entries(p.home.path(), &["--action", "preview.apply"]);
    let preview = applied.iter().find(|e| e["target"] == format!("{REPO}#15") && e["outcome"] == "ok").unwrap();
    assert!(preview["reason"].as_str().unwrap().contains("a fork gets no secrets"), "{preview}");

    let statuses = p.api.statuses();
    for ((n, _, code), sha) in cases.iter().zip(&shas) {
        let mine: Vec<_> = statuses.iter().filter(|(_, s, _)| s == sha).collect();
        assert_eq!(mine.iter().map(|(s, _, _)| s.as_str()).collect::<Vec<_>>(), vec!["pending", "failure"], "pr {n}: {statuses:?}");
        assert!(names(code, &mine[1].2), "the failure status names the finding: {:?}", mine[1]);
    }
    p.deliver(&server, "closed", 15, &fork_sha, "someone/site");
    p.wait(&server, 15, "destroyed", |r| r["project"].is_null());
}

#[test]
fn a_restart_mid_queue_converges_and_a_preview_past_its_time_to_live_is_destroyed() {
    if !support::runtime_available() || !support::require_tools(&["git", "curl"]) {
        return;
    }
    let up = Upstream::new("restart");
    let ncl = web_ncl(&up.name, "");
    let p = Previews::new(&up, r#"policy = { networks = ['none, 'isolated, 'egress], secrets.API_TOKEN = { env = "SERVE_TEST_API_TOKEN" } },"#);
    let v1 = up.push(3, &ncl, "before the crash");
    {
        let mut server = p.start();
        p.deliver(&server, "opened", 3, &v1, REPO);
        // SIGKILL: no graceful shutdown, the job is queued or half done.
        server.kill(libc::SIGKILL);
    }
    // A stray preview object no record accounts for is removed by reconcile.
    let stray = format!("galley_{}_pr-99", up.name);
    // The server's id is a hash of its GALLEY_HOME; another server's previews are left alone.
    let server_id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(p.home.path().as_os_str().as_encoded_bytes())[..6]);
    let label = format!("io.galley.preview={server_id}:{REPO}#99");
    podman_ok(&["network", "create", "--label", &format!("io.galley.project={}", up.name), "--label", "io.galley.instance=pr-99", "--label", &label, &stray]);
    let server = p.start();
    let (port, _) = p.serving(&server, 3, &v1);
    assert!(get_until(port, "before the crash").contains("before the crash"), "the restarted server converged");
    let start = Instant::now();
    while up.leftovers("network").contains(&stray) {
        assert!(start.elapsed() < Duration::from_secs(60), "the unrecorded preview network stays: {}", server.records_text());
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(server);

    // The same state under a time to live of under a second: reconcile destroys the preview.
    let text = std::fs::read_to_string(&p.config).unwrap().replace("max_body_bytes = 4096,", "max_body_bytes = 4096, ttl_hours = 0.0002,");
    std::fs::write(&p.config, text).unwrap();
    let server = p.start();
    let r = p.wait(&server, 3, "expired", |r| r["project"].is_null());
    assert!(r["failure"].as_str().unwrap_or("").contains("expired"), "{r}");
    assert_eq!(up.leftovers("ps"), Vec::<String>::new(), "the expired preview's container is gone");
}

#[test]
fn apply_host_ports_auto_gives_each_instance_its_own_stable_port_shown_by_plan_and_status_and_freed_by_destroy() {
    if !support::runtime_available() {
        return;
    }
    let p = TestProject::new("ports").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.web = galley.presets.service_on 8080 18080 & {
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"],
  },"#,
    );
    let plan = p.galley_code(&["plan", "--instance", "pr-7", "--host-ports", "auto"], 0);
    let port_of = |text: &str| -> u16 {
        let line = text.lines().find(|l| l.contains("host port: web 8080/tcp -> 127.0.0.1:")).unwrap_or_else(|| panic!("no host port line: {text}"));
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    };
    let seven = port_of(&plan);
    assert!((20000..=20999).contains(&seven), "{plan}");
    let applied = p.galley_code(&["apply", "--instance", "pr-7", "--host-ports", "auto", "--auto-approve"], 0);
    assert_eq!(port_of(&applied), seven, "apply takes the port the plan showed");
    let eight = port_of(&p.galley_code(&["apply", "--instance", "pr-8", "--host-ports", "auto", "--auto-approve"], 0));
    assert_ne!(seven, eight, "two instances of one project get different host ports");
    let status = p.galley_code(&["status", "--instance", "pr-7"], 0);
    assert!(status.contains(&format!("127.0.0.1:{seven}->8080")) && status.contains("matches"), "{status}");
    let again = p.galley_code(&["apply", "--instance", "pr-7", "--host-ports", "auto", "--auto-approve"], 0);
    assert!(again.contains("no changes"), "the port is stable across re-applies: {again}");
    assert!(http_get(seven, "/").is_ok() && http_get(eight, "/").is_ok(), "both instances answer on their own ports");
    p.galley_code(&["destroy", "--instance", "pr-7", "--auto-approve"], 0);
    assert!(!p.home.path().join(format!("state/{}/pr-7/_ports.json", p.name)).exists(), "destroy frees the port");
    p.galley_code(&["destroy", "--instance", "pr-8", "--auto-approve"], 0);
}

/// A new API token of `scope` in `home`, made with `galley token create`: (token, id).
fn token(home: &Path, scope: &str) -> (String, String) {
    let (ok, out, err) = galley(home, &["token", "create", "--name", &scope.replace(':', "-"), "--scope", scope, "--ttl", "1h", "--format", "json"]);
    assert!(ok, "token create: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (v["token"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
}

/// An admin API call with curl: (HTTP status, JSON body).
fn admin(port: u16, method: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let auth = format!("Authorization: Bearer {token}");
    let out = run("curl", &["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", &auth, &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn admin_api_lists_and_redeploys_a_previewed_pull_request_a_read_token_cannot_destroy_it_and_destroy_removes_it() {
    if !support::runtime_available() || !support::require_tools(&["git", "curl"]) {
        return;
    }
    let up = Upstream::new("admin");
    let ncl = web_ncl(&up.name, "");
    let p = Previews::new(&up, r#"policy = { networks = ['none, 'isolated, 'egress], secrets.API_TOKEN = { env = "SERVE_TEST_API_TOKEN" } },"#);
    let mut server = p.start();
    let home = p.home.path();
    let v1 = up.push(4, &ncl, "managed through the admin api");
    p.deliver(&server, "opened", 4, &v1, REPO);
    let (port, url) = p.serving(&server, 4, &v1);
    assert!(get_until(port, "managed through").contains("managed through"));
    let (read, read_id) = token(home, "previews:read");
    let (write, write_id) = token(home, "previews:write");
    let id = "octo-org+site+pr-4";

    let (code, list) = admin(server.port, "GET", "/admin/v1/previews", &read);
    assert_eq!(code, 200, "{list}");
    let want = serde_json::json!({ "id": id, "status": "running", "url": url });
    assert_eq!(list["previews"], serde_json::json!([want]), "the preview the signed delivery made");
    let (code, one) = admin(server.port, "GET", &format!("/admin/v1/previews/{id}"), &read);
    assert_eq!((code, &one), (200, &want));
    let (code, _) = admin(server.port, "GET", "/admin/v1/previews/octo-org+site+pr-404", &read);
    assert_eq!(code, 404);

    let (code, _) = admin(server.port, "POST", &format!("/admin/v1/previews/{id}/redeploy"), &read);
    assert_eq!(code, 403, "a previews:read token cannot redeploy");
    let (code, again) = admin(server.port, "POST", &format!("/admin/v1/previews/{id}/redeploy"), &write);
    assert_eq!((code, again["id"].as_str()), (200, Some(id)), "{again}");
    p.wait(&server, 4, "redeployed", |r| r["applied"] == v1.as_str() && r["delivery"].is_null());
    let (_, one) = admin(server.port, "GET", &format!("/admin/v1/previews/{id}"), &read);
    assert_eq!(one, want, "the redeployed preview runs again at the same URL");

    let c = format!("galley_{}_pr-4_web", up.name);
    let (code, refused) = admin(server.port, "DELETE", &format!("/admin/v1/previews/{id}"), &read);
    assert_eq!(code, 403, "a previews:read token cannot destroy: {refused}");
    assert_eq!(up.leftovers("ps"), vec![c.clone()], "the refused destroy left the preview up");

    let (code, done) = admin(server.port, "DELETE", &format!("/admin/v1/previews/{id}"), &write);
    assert_eq!((code, &done), (200, &serde_json::json!({ "destroyed": id })), "{}", server.records_text());
    for kind in ["ps", "network", "volume"] {
        assert_eq!(up.leftovers(kind), Vec::<String>::new(), "a destroyed preview leaves no {kind}");
    }
    assert!(walk(&home.join("run").join(&up.name)).is_empty(), "no secret file is left");
    let (_, after) = admin(server.port, "GET", &format!("/admin/v1/previews/{id}"), &read);
    assert_eq!(after["status"], "closed", "{after}");

    let calls = audit_entries(home, &["--action", "admin.preview.destroy"]);
    let seen: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    let (r, w) = (format!("token:{read_id}"), format!("token:{write_id}"));
    assert_eq!(seen, [(r.as_str(), "denied", "127.0.0.1"), (w.as_str(), "started", "127.0.0.1"), (w.as_str(), "ok", "127.0.0.1")]);
    let applied = audit_entries(home, &["--action", "preview.apply"]);
    let actors: Vec<_> = applied.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["github:delivery-1", "serve:queue"], "the delivery, then the redeploy: {applied:?}");
    assert_eq!(applied[0]["target"], format!("{REPO}#4"));
    let destroyed = audit_entries(home, &["--action", "preview.destroy"]);
    assert_eq!(destroyed.len(), 1, "{destroyed:?}");
    assert_eq!(destroyed[0]["actor"], "serve:queue", "the admin call itself is the token's entry");
    server.stop();
    assert!(!std::fs::read_to_string(home.join("audit.log")).unwrap().contains(&write), "no token in the audit log");
    assert_audit_intact(home);
}

#[test]
fn an_unwritable_audit_log_answers_a_delivery_503_and_queues_nothing() {
    if !support::require_tool("curl") {
        return;
    }
    let Hooks { server, api, home, _dir: _config } = Hooks::start(SECRET);
    // The log's path taken by a directory: no entry can be written, root or not.
    let log = home.path().join("audit.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();

    let body = pr_payload("opened", 5, &"5".repeat(40), REPO);
    let (code, _) = server.post(REPO, "pull_request", Some("d-unlogged"), Some(&sign(SECRET.as_bytes(), &body)), &body);
    assert_eq!(code, 503, "{}", server.records_text());
    let record = home.path().join("serve/previews/octo-org+site/pr-5.json");
    assert!(!record.exists(), "nothing is recorded for an unlogged delivery");
    let (code, _) = server.post(REPO, "pull_request", Some("d-forged"), Some("sha256=00"), &body);
    assert_eq!(code, 503, "a rejection that cannot be logged is not answered as handled");
    std::thread::sleep(Duration::from_millis(500));
    assert!(api.statuses().is_empty(), "no status sent: nothing was queued");
    assert!(!record.exists());
}

//! The admin API over real HTTP: an axum server on 127.0.0.1 driven by python3's http.client,
//! with tokens made by the real `galley token` binary and previews recorded in the test.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use galley::admin::{AdminState, AuthLimits, Preview, PreviewError, Previews, router};
use galley::audit_log::{Entry, Log, Outcome};
use galley::clock::Clock;
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000;

/// Previews kept in memory, with every operation the API asked for.
#[derive(Default)]
struct Recorded {
    previews: Mutex<BTreeMap<String, Preview>>,
    calls: Mutex<Vec<String>>,
}

impl Recorded {
    fn with(ids: &[&str]) -> Arc<Recorded> {
        let r = Recorded::default();
        for id in ids {
            let p = Preview { id: (*id).into(), status: "running".into(), url: Some(format!("http://{id}.preview.test")) };
            r.previews.lock().unwrap().insert((*id).into(), p);
        }
        Arc::new(r)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Previews for Recorded {
    fn list(&self) -> Result<Vec<Preview>, PreviewError> {
        Ok(self.previews.lock().unwrap().values().cloned().collect())
    }
    fn get(&self, id: &str) -> Result<Option<Preview>, PreviewError> {
        Ok(self.previews.lock().unwrap().get(id).cloned())
    }
    fn redeploy(&self, id: &str) -> Result<Preview, PreviewError> {
        self.calls.lock().unwrap().push(format!("redeploy {id}"));
        let mut all = self.previews.lock().unwrap();
        let p = all.get_mut(id).ok_or_else(|| PreviewError::NotFound(id.into()))?;
        p.status = "building".into();
        Ok(p.clone())
    }
    fn destroy(&self, id: &str) -> Result<(), PreviewError> {
        self.calls.lock().unwrap().push(format!("destroy {id}"));
        self.previews.lock().unwrap().remove(id).map(drop).ok_or_else(|| PreviewError::NotFound(id.into()))
    }
}

struct Server {
    port: u16,
    previews: Arc<Recorded>,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(home: &Path, now: u64, proxies: &[&str]) -> Server {
        let previews = Recorded::with(&["pr-1", "pr-2"]);
        let proxies: Vec<IpAddr> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        let limits = AuthLimits::default();
        let state = AdminState::build(home.to_path_buf(), previews.clone(), proxies, Clock::fixed(now), limits);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { port, previews, _rt: rt }
    }

    /// Send `requests` (`method`, `path`, optional `token`, `source` address, `headers`,
    /// `repeat`) with python3's http.client, one keep-alive connection per source address;
    /// each answer's status, body and headers.
    fn send(&self, requests: &[Value]) -> Vec<Value> {
        let mut child = Command::new("python3")
            .args(["-c", CLIENT, &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child.stdin.take().unwrap().write_all(Value::Array(requests.to_vec()).to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn one(&self, method: &str, path: &str, token: Option<&str>) -> Value {
        self.send(&[json!({ "method": method, "path": path, "token": token })]).remove(0)
    }
}

const CLIENT: &str = r#"
import http.client, json, sys
port = int(sys.argv[1])
conns, out = {}, []
for r in json.load(sys.stdin):
    src = r.get("source", "127.0.0.1")
    for _ in range(r.get("repeat", 1)):
        if src not in conns:
            conns[src] = http.client.HTTPConnection("127.0.0.1", port, source_address=(src, 0), timeout=30)
        c = conns[src]
        headers = dict(r.get("headers", {}))
        if r.get("token"):
            headers["Authorization"] = "Bearer " + r["token"]
        c.request(r["method"], r["path"], headers=headers)
        resp = c.getresponse()
        body = resp.read().decode()
        if resp.getheader("connection", "").lower() == "close":
            del conns[src]
        out.append({"status": resp.status, "body": json.loads(body) if body else None,
                    "headers": {k.lower(): v for k, v in resp.getheaders()}})
print(json.dumps(out))
"#;

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Home { _dir: dir, home }
    }

    /// `galley token ARGS` at time `now`; its stdout, which must succeed.
    fn token(&self, now: u64, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_galley"))
            .arg("token")
            .args(args)
            .env("GALLEY_HOME", &self.home)
            .env("GALLEY_TEST_NOW", now.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A new token of `scope` living `ttl`, made at `now`: its text and its id.
    fn create(&self, now: u64, scope: &str, ttl: &str) -> (String, String) {
        let v: Value = serde_json::from_str(&self.token(now, &["--format", "json", "create", "--name", "test", "--scope", scope, "--ttl", ttl])).unwrap();
        (v["token"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
    }

    fn entries(&self) -> Vec<Entry> {
        Log::open(&self.home).read().unwrap()
    }
}

fn status(v: &Value) -> u64 {
    v["status"].as_u64().unwrap()
}

#[test]
fn admin_api_answers_valid_tokens_and_401s_missing_wrong_expired_and_revoked_ones() {
    let h = Home::new();
    let (good, _) = h.create(T0, "previews:read", "1d");
    let (short, _) = h.create(T0 - 120, "previews:read", "60s");
    let (revoked, revoked_id) = h.create(T0, "admin", "1d");
    h.token(T0, &["revoke", &revoked_id]);
    let mut typo = good.clone().into_bytes();
    typo[9] = if typo[9] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    let server = Server::start(&h.home, T0, &[]);

    let ok = server.one("GET", "/admin/v1/previews", Some(&good));
    assert_eq!(status(&ok), 200, "{ok}");
    assert_eq!(ok["body"]["previews"][0], json!({ "id": "pr-1", "status": "running", "url": "http://pr-1.preview.test" }));
    let one = server.one("GET", "/admin/v1/previews/pr-2", Some(&good));
    assert_eq!((status(&one), one["body"]["id"].as_str()), (200, Some("pr-2")));
    assert_eq!(status(&server.one("GET", "/admin/v1/previews/pr-9", Some(&good))), 404);

    for (what, token) in [("missing", None), ("one character different", Some(typo.as_str())), ("expired", Some(short.as_str())), ("revoked", Some(revoked.as_str())), ("not a token", Some("hunter2"))] {
        let r = server.one("GET", "/admin/v1/previews", token);
        assert_eq!(status(&r), 401, "{what}: {r}");
        assert_eq!(r["headers"]["www-authenticate"], "Bearer realm=\"galley\"", "{what}");
        assert_eq!(r["body"]["error"], "a valid Bearer token is required", "{what}");
    }
    let reasons: Vec<String> = h.entries().iter().filter(|e| e.outcome == Outcome::Denied).map(|e| e.reason.clone().unwrap()).collect();
    for want in ["no Authorization: Bearer token", "not a galley token (its checksum does not match)", "expired token", "revoked token", "not a galley token (it does not start with glt_)"] {
        assert!(reasons.iter().any(|r| r.starts_with(want)), "{want} in {reasons:?}");
    }
}

#[test]
fn admin_api_rotated_token_works_during_grace_and_is_refused_after() {
    let h = Home::new();
    let (old, old_id) = h.create(T0, "previews:read", "7d");
    let new = h.token(T0 + 100, &["rotate", &old_id, "--grace", "10m"]);
    let during = Server::start(&h.home, T0 + 100 + 599, &[]);
    assert_eq!(status(&during.one("GET", "/admin/v1/previews", Some(&old))), 200);
    assert_eq!(status(&during.one("GET", "/admin/v1/previews", Some(&new))), 200);
    let after = Server::start(&h.home, T0 + 100 + 600, &[]);
    assert_eq!(status(&after.one("GET", "/admin/v1/previews", Some(&old))), 401);
    assert_eq!(status(&after.one("GET", "/admin/v1/previews", Some(&new))), 200);
}

#[test]
fn admin_api_wrong_scope_is_403_and_every_change_is_audited_with_token_and_source() {
    let h = Home::new();
    let (read, _) = h.create(T0, "previews:read", "1d");
    let (write, write_id) = h.create(T0, "previews:write", "1d");
    let (admin, admin_id) = h.create(T0, "admin", "1d");
    let server = Server::start(&h.home, T0, &[]);
    let r = server.one("DELETE", "/admin/v1/previews/pr-1", Some(&read));
    assert_eq!((status(&r), r["body"]["error"].as_str()), (403, Some("scope previews:read does not allow previews:write")));
    assert_eq!(status(&server.one("GET", "/admin/v1/audit", Some(&write))), 403);
    assert!(server.previews.calls().is_empty(), "a refused call acted");

    let redeployed = server.one("POST", "/admin/v1/previews/pr-2/redeploy", Some(&write));
    assert_eq!((status(&redeployed), redeployed["body"]["status"].as_str()), (200, Some("building")));
    let destroyed = server.one("DELETE", "/admin/v1/previews/pr-1", Some(&write));
    assert_eq!((status(&destroyed), &destroyed["body"]), (200, &json!({ "destroyed": "pr-1" })));
    assert_eq!(status(&server.one("DELETE", "/admin/v1/previews/pr-1", Some(&write))), 404);
    assert_eq!(server.previews.calls(), ["redeploy pr-2", "destroy pr-1", "destroy pr-1"]);

    let audit = server.one("GET", "/admin/v1/audit?action=admin.preview.destroy", Some(&admin));
    assert_eq!(status(&audit), 200, "{audit}");
    let seen: Vec<(String, String, String, String)> = audit["body"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().into(), e["target"].as_str().unwrap().into(), e["source"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into()))
        .collect();
    let actor = format!("token:{write_id}");
    let row = |outcome: &str| (actor.clone(), "pr-1".to_owned(), "127.0.0.1".to_owned(), outcome.to_owned());
    let read_actor = seen[0].0.clone();
    assert!(read_actor.starts_with("token:") && read_actor != actor);
    assert_eq!(seen[1..], [row("started"), row("ok"), row("started"), row("failed")]);
    assert_eq!(seen[0].3, "denied");
    // The audit read itself is logged too, with the admin token.
    assert!(h.entries().iter().any(|e| e.action == "admin.audit.read" && e.actor == format!("token:{admin_id}")));
}

#[test]
fn admin_api_brute_force_of_1000_wrong_tokens_from_one_address_is_throttled_and_logged() {
    let h = Home::new();
    let (good, _) = h.create(T0, "previews:read", "1d");
    let server = Server::start(&h.home, T0, &[]);
    let last = if good.ends_with('x') { 'y' } else { 'x' };
    let near_miss = format!("{}{last}", &good[..good.len() - 1]);
    let mut wrong = Vec::new();
    for i in 0..1000 {
        // Well-formed tokens that were never issued, and near-misses of the real one.
        let t = if i % 2 == 0 { galley::token::Token::generate().expose().to_owned() } else { near_miss.clone() };
        wrong.push(json!({ "method": "GET", "path": "/admin/v1/previews", "token": t, "source": "127.0.0.2" }));
    }
    wrong.push(json!({ "method": "GET", "path": "/admin/v1/previews", "token": good, "source": "127.0.0.3" }));
    wrong.push(json!({ "method": "GET", "path": "/admin/v1/previews", "token": good, "source": "127.0.0.2" }));
    let answers = server.send(&wrong);
    let statuses: Vec<u64> = answers.iter().map(status).collect();
    let max = galley::admin::MAX_FAILURES as usize;
    assert!(statuses[..max].iter().all(|s| *s == 401), "{:?}", &statuses[..max]);
    assert!(statuses[max..1000].iter().all(|s| *s == 429), "all refused, throttled after {max}");
    assert!(answers[max]["headers"]["retry-after"].as_str().unwrap().parse::<u64>().unwrap() <= 60);
    assert_eq!(statuses[1000], 200, "another address is still answered");
    assert_eq!(statuses[1001], 429, "the throttled address is refused unread, even with a valid token");

    let from = |e: &&Entry| e.source.as_deref() == Some("127.0.0.2");
    let entries = h.entries();
    let denied = entries.iter().filter(from).filter(|e| e.outcome == Outcome::Denied).count();
    let bursts: Vec<String> = entries.iter().filter(from).filter(|e| e.outcome == Outcome::Throttled).map(|e| e.reason.clone().unwrap()).collect();
    assert_eq!(denied, max);
    assert_eq!(bursts.len(), 10, "the first refusal and every 100th: {bursts:?}");
    assert!(bursts[9].ends_with("900 requests refused unread so far"), "{}", bursts[9]);
    let text = std::fs::read_to_string(h.home.join("audit.log")).unwrap();
    assert!(!text.contains(&good[4..36]), "no token in the log");
    assert_eq!(Log::open(&h.home).verify().unwrap().broken, None);
}

#[test]
fn admin_api_refuses_with_503_when_the_audit_log_cannot_be_written() {
    let h = Home::new();
    let (write, _) = h.create(T0, "previews:write", "1d");
    let server = Server::start(&h.home, T0, &[]);
    std::fs::rename(h.home.join("audit.log"), h.home.join("audit.log.kept")).unwrap();
    std::fs::create_dir(h.home.join("audit.log")).unwrap();
    for (method, path) in [("DELETE", "/admin/v1/previews/pr-1"), ("POST", "/admin/v1/previews/pr-1/redeploy"), ("GET", "/admin/v1/previews")] {
        let r = server.one(method, path, Some(&write));
        assert_eq!(status(&r), 503, "{method} {path}: {r}");
        assert!(r["body"]["error"].as_str().unwrap().starts_with("refusing to act unlogged"), "{r}");
    }
    assert!(server.previews.calls().is_empty(), "the API acted unlogged");
    assert_eq!(server.previews.list().unwrap().len(), 2);
}

#[test]
fn admin_api_takes_forwarded_for_only_from_listed_proxies() {
    let h = Home::new();
    let (read, _) = h.create(T0, "previews:read", "1d");
    let server = Server::start(&h.home, T0, &["127.0.0.4"]);
    let forwarded = json!({ "X-Forwarded-For": "198.51.100.7" });
    let requests = [
        json!({ "method": "GET", "path": "/admin/v1/previews", "token": read, "source": "127.0.0.1", "headers": forwarded }),
        json!({ "method": "GET", "path": "/admin/v1/previews", "token": read, "source": "127.0.0.4", "headers": forwarded }),
    ];
    assert!(server.send(&requests).iter().all(|r| status(r) == 200));
    let sources: Vec<Option<String>> = h.entries().into_iter().filter(|e| e.action == "admin.preview.list").map(|e| e.source).collect();
    assert_eq!(sources, [Some("127.0.0.1".to_owned()), Some("198.51.100.7".to_owned())]);
}

#[test]
fn admin_api_openapi_description_lists_every_route_and_each_status_it_answers() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin-api.openapi.json")).unwrap()).unwrap();
    let h = Home::new();
    let (admin, _) = h.create(T0, "admin", "1d");
    let server = Server::start(&h.home, T0, &[]);
    // Reads first, then the redeploy, then the destroy, so each finds its preview.
    let mut operations: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_owned(), path.clone()));
            }
        }
    }
    operations.sort_by_key(|(m, _)| ["get", "post", "delete"].iter().position(|x| x == m));
    assert_eq!(operations.len(), 5, "{operations:?}");
    for (method, path) in &operations {
        let responses = &doc["paths"][path][method]["responses"];
        let url = path.replace("{id}", "pr-1");
        let anonymous = server.one(&method.to_uppercase(), &url, None);
        assert_eq!(status(&anonymous), 401);
        assert!(responses.get("401").is_some(), "{method} {path} documents 401");
        let answered = server.one(&method.to_uppercase(), &url, Some(&admin));
        assert_eq!(status(&answered), 200, "{method} {path}: {answered}");
        assert!(responses.get("200").is_some(), "{method} {path} documents 200");
    }
    let required: Vec<&str> = doc["components"]["schemas"]["Preview"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let one = server.one("GET", "/admin/v1/previews/pr-2", Some(&admin));
    let mut keys: Vec<&str> = one["body"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, required);
    let entry = &server.one("GET", "/admin/v1/audit?limit=1", Some(&admin))["body"]["entries"][0];
    let required: Vec<&str> = doc["components"]["schemas"]["Entry"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(entry.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>(), required);
    assert_eq!(status(&server.one("GET", "/admin/v1/nothing", Some(&admin))), 404, "no undocumented route");
}

//! The language server end to end: the pytest-lsp suite in `tests/lsp/` (a real LSP client), and
//! 200 random edits spoken as raw JSON-RPC over the server's stdio that must never crash it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const GALLEY: &str = env!("CARGO_BIN_EXE_galley");

#[test]
fn pytest_lsp_suite_passes() {
    let probe = Command::new("python3").args(["-c", "import pytest, pytest_lsp"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        support::skip("pytest-lsp is not importable (pip install pytest-lsp)");
        return;
    }
    let status = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/lsp"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GALLEY_BIN", GALLEY)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the pytest-lsp suite failed: {status}");
}

/// A language server child and its messages.
struct Server {
    child: Child,
    stdin: ChildStdin,
    inbox: Receiver<Value>,
    next_id: i64,
}

impl Server {
    fn start(home: &std::path::Path, log: std::fs::File) -> Server {
        let mut child = Command::new(GALLEY)
            .arg("lsp")
            .env("GALLEY_HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("galley lsp starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, inbox) = channel();
        std::thread::spawn(move || {
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        len = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; len.expect("every message has a Content-Length")];
                if stdout.read_exact(&mut body).is_err() {
                    return;
                }
                let value: Value = serde_json::from_slice(&body).expect("the server writes JSON");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Server { child, stdin, inbox, next_id: 0 }
    }

    fn send(&mut self, message: Value) {
        let body = serde_json::to_vec(&message).unwrap();
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(&body).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    /// Wait for a notification, skipping everything else.
    fn notification(&mut self, method: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.inbox.recv_timeout(left).unwrap_or_else(|_| panic!("no {method} notification"));
            if msg.get("method") == Some(&json!(method)) && msg.get("id").is_none() {
                return msg;
            }
        }
    }

    /// Wait for the response to request `id`, skipping notifications.
    fn response(&mut self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.inbox.recv_timeout(left).unwrap_or_else(|_| panic!("no response to request {id}"));
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "{", "}", "[", "]", "\"", "'", "=", ",", ".", "\n", " ", "é", "\u{1F600}", "m%\"", "\"%", "#",
    "sandboxes.x = { ", "ports = [{ host = 70000 }]", "let rec f = fun x => f (x + 1) in f 0",
    "import \"nope.ncl\"", "network = 'egress", "%{", "\\", "null", "1e999", "'wide",
];

#[test]
fn random_edits_never_crash_the_server() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let config = project.path().join("galley.ncl");
    let uri = format!("file://{}", config.display());
    let log_path = home.path().join("lsp.log");
    let mut server = Server::start(home.path(), std::fs::File::create(&log_path).unwrap());
    let id = server.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": { "evalTimeoutMs": 300 } }),
    );
    assert!(server.response(id)["result"]["capabilities"]["hoverProvider"].as_bool().unwrap());
    server.notify("initialized", json!({}));

    let examples: Vec<String> = ["web", "agent", "hello"]
        .iter()
        .map(|e| std::fs::read_to_string(format!("{}/examples/{e}/galley.ncl", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect();
    let mut text = format!("# caf\u{e9} \u{1F600}\n{}", examples[0]);
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "nickel", "version": 1, "text": text } }),
    );

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut version = 1;
    for step in 0..200 {
        version += 1;
        let lines = text.lines().count() as u64;
        let pos = |rng: &mut Rng| json!({ "line": rng.below(lines + 3), "character": rng.below(120) });
        let change = match rng.below(10) {
            // A truncated file, cut at any byte (then made valid UTF-8, as JSON requires).
            0 => {
                let cut = rng.below(text.len() as u64 + 1) as usize;
                text = String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned();
                json!({ "text": text })
            }
            1 => {
                text = examples[rng.below(3) as usize].clone();
                json!({ "text": text })
            }
            // Ranged edits at arbitrary positions: past line ends, past the end of the file,
            // inside surrogate pairs, reversed.
            _ => {
                let insert: String = (0..rng.below(4)).map(|_| rng.pick(PIECES)).collect();
                let (start, end) = (pos(&mut rng), pos(&mut rng));
                json!({ "range": { "start": start, "end": end }, "text": insert })
            }
        };
        server.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [change] }),
        );
        // Keep the test's copy of the text in step only for whole-text changes; ranged edits
        // make it diverge, which is fine: positions are random anyway.
        match step % 5 {
            0 => {
                let p = pos(&mut rng);
                let id = server.request("textDocument/hover", json!({ "textDocument": { "uri": uri }, "position": p }));
                assert!(server.response(id).get("error").is_none(), "hover failed at step {step}");
            }
            1 => {
                let p = pos(&mut rng);
                let id = server.request("textDocument/completion", json!({ "textDocument": { "uri": uri }, "position": p }));
                assert!(server.response(id).get("error").is_none(), "completion failed at step {step}");
            }
            2 => {
                // Garbage parameters get an error answer, not a crash.
                let id = server.request("textDocument/hover", json!({ "position": "nowhere" }));
                assert!(server.response(id).get("error").is_some());
                server.notify("textDocument/didChange", json!({ "contentChanges": 7 }));
            }
            _ => {}
        }
        if step % 50 == 49 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Still alive and answering; then it shuts down cleanly.
    let id = server.request("textDocument/hover", json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 } }));
    assert!(server.response(id).get("error").is_none());
    // Earlier publications were skipped while waiting for responses: make one more change and
    // wait for its diagnostics.
    version += 1;
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": examples[2] }] }),
    );
    let published = server.notification("textDocument/publishDiagnostics");
    assert_eq!(published["params"]["uri"], json!(uri));
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited");
    let id = server.request("shutdown", Value::Null);
    server.response(id);
    server.notify("exit", Value::Null);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("panicked") && !log.contains("internal error"), "{log}");
    assert!(log.contains("evaluated"), "no evaluation finished: {log}");
}

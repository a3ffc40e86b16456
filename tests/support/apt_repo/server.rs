//! The APT repository fixture's HTTP server: a small HTTP/1.1 file server on 127.0.0.1, run
//! from threads of the test process, that records every request and can be told to misbehave.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    pub status: u16,
}

/// What the server answers for one path instead of the file, set by the hostile-server helpers.
#[derive(Clone, Debug)]
pub(super) enum Override {
    /// This status with a short body.
    Status(u16),
    /// A Content-Length of 1 TiB and zeros for as long as the client reads.
    Endless,
    /// A Content-Length of 1 MiB, then one byte every 100 ms.
    Trickle,
}

/// A small HTTP/1.1 file server on 127.0.0.1: GET and HEAD of files under a root, 404 for
/// anything else there, keep-alive, Content-Length; every request recorded.
pub(super) struct Server {
    pub(super) port: u16,
    pub(super) log: Arc<Mutex<Vec<Request>>>,
    pub(super) overrides: Arc<Mutex<HashMap<String, Override>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// What a connection thread shares with the server.
struct Shared {
    root: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
    overrides: Arc<Mutex<HashMap<String, Override>>>,
}

impl Server {
    pub(super) fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(vec![]));
        let overrides = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared { root, log: log.clone(), overrides: overrides.clone() });
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(conn, &shared);
                });
            }
        });
        Server { port, log, overrides, stop, accept: Some(accept) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Largest request head the server reads; a longer one ends the connection.
const MAX_HEAD: u64 = 64 * 1024;

/// The declared length of an [`Override::Endless`] body.
const ENDLESS_LENGTH: u64 = 1 << 40;

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve_connection(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = String::new();
        let mut limited = (&mut reader).take(MAX_HEAD);
        let mut line = String::new();
        loop {
            line.clear();
            if limited.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split_whitespace();
        let (method, target, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let close = version != "HTTP/1.1"
            || lines.any(|h| h.split_once(':').is_some_and(|(k, v)| k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")));
        let path = target.split('?').next().unwrap_or("").to_owned();
        let connection = if close { "Connection: close\r\n" } else { "" };
        let known = matches!(method, "GET" | "HEAD");
        let special = if known { shared.overrides.lock().unwrap().get(&path).cloned() } else { None };
        let (status, body) = match special {
            Some(Override::Endless) => {
                shared.log.lock().unwrap().push(Request { method: method.to_owned(), path, status: 200 });
                write!(writer, "HTTP/1.1 200 OK\r\nContent-Length: {ENDLESS_LENGTH}\r\nContent-Type: application/octet-stream\r\n\r\n")?;
                if method == "HEAD" {
                    writer.flush()?;
                    continue;
                }
                let zeros = [0u8; 64 * 1024];
                // Until the client stops reading and closes: the write then fails.
                loop {
                    writer.write_all(&zeros)?;
                }
            }
            Some(Override::Trickle) => {
                shared.log.lock().unwrap().push(Request { method: method.to_owned(), path, status: 200 });
                write!(writer, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n", 1 << 20)?;
                writer.flush()?;
                if method == "HEAD" {
                    continue;
                }
                // Until the client gives up and closes: the write then fails.
                loop {
                    writer.write_all(b"-")?;
                    writer.flush()?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Some(Override::Status(code)) => (code, format!("{} {}\n", code, reason(code)).into_bytes()),
            None if !known => (405, b"method not allowed\n".to_vec()),
            None => match resolve(&shared.root, &path).and_then(|f| std::fs::read(f).ok()) {
                Some(bytes) => (200, bytes),
                None => (404, b"not found\n".to_vec()),
            },
        };
        shared.log.lock().unwrap().push(Request { method: method.to_owned(), path, status });
        write!(
            writer,
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{connection}\r\n",
            reason(status),
            body.len(),
        )?;
        if method != "HEAD" {
            writer.write_all(&body)?;
        }
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// The file under `root` that URL path `path` names: percent-decoded, no `..`, a regular file.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = percent_decode(path.strip_prefix('/')?)?;
    let rel = Path::new(&rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    full.is_file().then_some(full)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

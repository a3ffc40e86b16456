//! The SSRF guard: galley's registry client connects only through this in-process proxy on
//! 127.0.0.1, which resolves every host itself, refuses the whole connection if any resolved
//! address is private, loopback, link-local, CGNAT, unique-local, a cloud metadata address or
//! otherwise not globally routable (IPv4-mapped and -embedding IPv6 forms are unwrapped first),
//! and then connects only to an address it checked. A host may reach such addresses when its
//! registry entry says `allow_private = true`.
//!
//! Because the HTTP client's every connection goes through the proxy (`CONNECT host:port` for
//! HTTPS, an absolute-form request for plain HTTP), the check also applies after every redirect:
//! a redirect to another host is a new connection to the proxy.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The slowest pace a download may keep: after [`PACE_GRACE`], at least this many bytes a
/// second on average since its request. With the client's read timeout (no gap over 120 s),
/// a server that trickles bytes cannot hold a command for hours.
pub const MIN_PACE: u64 = 16 << 10;
/// How long a download may take before [`MIN_PACE`] applies (connection, TLS, a slow start).
pub const PACE_GRACE: Duration = Duration::from_secs(30);

/// The clock of one download, checked at each chunk.
pub struct Pace(std::time::Instant);

impl Pace {
    /// Started as the request is sent.
    pub fn start() -> Pace {
        Pace(std::time::Instant::now())
    }

    /// An error when `received` bytes are fewer than [`MIN_PACE`] asks of the time so far.
    pub fn check(&self, received: u64) -> Result<(), String> {
        let elapsed = self.0.elapsed();
        let Some(late) = elapsed.checked_sub(PACE_GRACE) else { return Ok(()) };
        if (received as f64) < late.as_secs_f64() * MIN_PACE as f64 {
            return Err(format!(
                "the server sent {received} bytes in {:.0} s, slower than the {} KiB/s every download must keep after its first {} s",
                elapsed.as_secs_f64(),
                MIN_PACE >> 10,
                PACE_GRACE.as_secs()
            ));
        }
        Ok(())
    }
}

/// Why a download stopped before its end.
#[derive(Debug)]
pub enum Cut<E> {
    /// The stream failed.
    Stream(E),
    /// The body ran past its limit of this many bytes.
    TooLong(u64),
    /// The server is slower than [`MIN_PACE`] (the message says how slow).
    Slow(String),
    /// The chunk could not be kept.
    Sink(io::Error),
}

/// Receive `body` to its end, giving `keep` each chunk as it arrives: at most `limit` bytes (a
/// chunk that would pass it is refused before it is kept), at [`MIN_PACE`] as `pace` counts
/// from the request. Returns the bytes received. The one loop of every download, so a cap or the
/// pace cannot be forgotten by one of them.
pub async fn receive<B, E>(
    body: impl futures_util::Stream<Item = Result<B, E>>,
    limit: u64,
    pace: &Pace,
    mut keep: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64, Cut<E>>
where
    B: AsRef<[u8]>,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Cut::Stream)?;
        let chunk = chunk.as_ref();
        received += chunk.len() as u64;
        if received > limit {
            return Err(Cut::TooLong(limit));
        }
        keep(chunk).map_err(Cut::Sink)?;
        pace.check(received).map_err(Cut::Slow)?;
    }
    Ok(received)
}

/// Why an address is refused, or `None` when it is public.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4).map(|_| "IPv4-mapped private address");
            }
            let s = v6.segments();
            if v6.is_loopback() {
                return Some("loopback address");
            }
            if v6.is_unspecified() {
                return Some("unspecified address");
            }
            if s[0] & 0xfe00 == 0xfc00 {
                return Some("unique-local address (fc00::/7)");
            }
            if s[0] & 0xffc0 == 0xfe80 {
                return Some("link-local address (fe80::/10)");
            }
            if s[0] & 0xffc0 == 0xfec0 {
                return Some("site-local address (fec0::/10)");
            }
            if s[0] & 0xff00 == 0xff00 {
                return Some("multicast address");
            }
            // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16).
            let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            if s[..6] == [0, 0, 0, 0, 0, 0] {
                return classify_v4(embedded(s[6], s[7])).map(|_| "IPv4-compatible private address");
            }
            if (s[0] == 0x64 && s[1] == 0xff9b) && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
                return classify_v4(embedded(s[6], s[7])).map(|_| "NAT64 form of a private address");
            }
            if s[0] == 0x2002 {
                return classify_v4(embedded(s[1], s[2])).map(|_| "6to4 form of a private address");
            }
            if s[0] == 0x2001 && s[1] == 0xdb8 {
                return Some("documentation address");
            }
            None
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [127, ..] => "loopback address (127.0.0.0/8)",
        [10, ..] => "private address (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "private address (172.16.0.0/12)",
        [192, 168, ..] => "private address (192.168.0.0/16)",
        [169, 254, 169, 254] => "cloud metadata address",
        [169, 254, ..] => "link-local address (169.254.0.0/16)",
        [100, b, ..] if (64..128).contains(&b) => "shared address space (100.64.0.0/10)",
        [0, ..] => "unspecified address (0.0.0.0/8)",
        [192, 0, 0, _] => "IETF protocol address (192.0.0.0/24)",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking address (198.18.0.0/15)",
        [a, ..] if a >= 224 => "multicast or reserved address",
        _ => return None,
    })
}

/// Hosts (`host` or `host:port`) allowed to reach private addresses.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow_private: BTreeSet<String>,
}

impl Policy {
    fn allows(&self, host: &str, port: u16) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_private.iter().any(|h| {
            h == &format!("{host}:{port}") || h == &format!("{bare}:{port}") || ((port == 443 || port == 80) && (h == host || h == bare))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub port: u16,
    pub address: IpAddr,
    pub reason: &'static str,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "galley's SSRF guard refused to connect to {}:{}: it resolves to {}, a {} (set allow_private = true in registries.\"{}:{}\" if this registry is yours)",
            self.host, self.port, self.address, self.reason, self.host, self.port
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {host}: {source}")]
    Connect { host: String, source: io::Error },
}

/// Resolve `host:port`, check every address, connect to the first checked one that answers.
/// The connection is only ever made to an address that passed the check.
pub fn connect(policy: &Policy, host: &str, port: u16) -> Result<TcpStream, GuardError> {
    let addrs = resolve_checked(policy, host, port)?;
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, Duration::from_secs(30)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(GuardError::Connect { host: host.into(), source: last.unwrap_or_else(|| io::Error::other("no address")) })
}

/// Resolve and check without connecting.
pub fn resolve_checked(policy: &Policy, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|source| GuardError::Resolve { host: host.into(), source })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(GuardError::NoAddress { host: host.into() });
    }
    if !policy.allows(host, port) {
        for a in &addrs {
            if let Some(reason) = classify(a.ip()) {
                return Err(GuardError::Refused(Refusal { host: bare.into(), port, address: a.ip(), reason }));
            }
        }
    }
    Ok(addrs)
}

/// The running proxy. Stops (and stops accepting) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(policy: Policy) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let policy = Arc::new(policy);
        {
            let refusals = refusals.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let policy = policy.clone();
                    let refusals = refusals.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, &policy, &refusals);
                    });
                }
            });
        }
        Ok(Proxy { addr, refusals, stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The connections refused so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusals").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((format!("[{h}]"), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), default_port)),
    }
}

/// Connect to `host:port` under `policy`; on failure record a refusal, answer 403, and return
/// `None`.
fn connect_or_refuse(
    policy: &Policy,
    host: &str,
    port: u16,
    refusals: &Mutex<Vec<Refusal>>,
    client: &mut TcpStream,
    fail: impl Fn(&mut TcpStream, &str, &str),
) -> Option<TcpStream> {
    match connect(policy, host, port) {
        Ok(s) => Some(s),
        Err(e) => {
            if let GuardError::Refused(r) = &e {
                refusals.lock().expect("refusals").push(r.clone());
            }
            fail(client, "403 Forbidden", &e.to_string());
            None
        }
    }
}

fn serve(client: TcpStream, policy: &Policy, refusals: &Mutex<Vec<Refusal>>) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
        if head.len() > 200 {
            return Ok(());
        }
    }
    let Some(request_line) = head.first().cloned() else { return Ok(()) };
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("HTTP/1.1"));
    let mut client_w = client;
    let fail = |w: &mut TcpStream, code: &str, msg: &str| {
        let _ = write!(w, "HTTP/1.1 {code}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_host_port(target, 443) else {
            fail(&mut client_w, "400 Bad Request", "bad CONNECT target");
            return Ok(());
        };
        let Some(upstream) = connect_or_refuse(policy, &host, port, refusals, &mut client_w, fail) else {
            return Ok(());
        };
        client_w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let buffered = reader.buffer().to_vec();
        pipe(reader.into_inner(), client_w, upstream, buffered)
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            fail(&mut client_w, "400 Bad Request", "only absolute http:// requests and CONNECT are proxied");
            return Ok(());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some((host, port)) = split_host_port(authority, 80) else {
            fail(&mut client_w, "400 Bad Request", "bad request target");
            return Ok(());
        };
        let Some(mut upstream) = connect_or_refuse(policy, &host, port, refusals, &mut client_w, fail) else {
            return Ok(());
        };
        // One request per connection: the upstream closes after answering, so a kept-alive
        // client connection can never carry an unchecked second request.
        let mut out = format!("{method} {path} {version}\r\n");
        for h in &head[1..] {
            let name = h.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            if name == "connection" || name == "proxy-connection" || name == "keep-alive" || name == "proxy-authorization" {
                continue;
            }
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        upstream.write_all(out.as_bytes())?;
        let buffered = reader.buffer().to_vec();
        pipe(reader.into_inner(), client_w, upstream, buffered)
    }
}

/// Copy both ways until each side closes.
fn pipe(client_r: TcpStream, mut client_w: TcpStream, upstream: TcpStream, buffered: Vec<u8>) -> io::Result<()> {
    let mut up_w = upstream.try_clone()?;
    let mut up_r = upstream;
    up_w.write_all(&buffered)?;
    let _ = client_r.set_read_timeout(None);
    let t = std::thread::spawn(move || {
        let mut r = client_r;
        let _ = copy(&mut r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let _ = copy(&mut up_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Both);
    let _ = t.join();
    Ok(())
}

fn copy(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    io::copy(r, w)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_download_is_refused_at_the_chunk_that_passes_its_limit_before_it_is_kept() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let chunks = |sizes: &[usize]| futures_util::stream::iter(sizes.iter().map(|n| Ok::<_, String>(vec![7u8; *n])).collect::<Vec<_>>());
        let keep = |kept: &mut Vec<u8>, c: &[u8]| {
            kept.extend_from_slice(c);
            Ok(())
        };
        let mut kept = Vec::new();
        let got = rt.block_on(receive(chunks(&[4, 4, 2]), 10, &Pace::start(), |c| keep(&mut kept, c)));
        assert_eq!((got.unwrap(), kept.len()), (10, 10), "exactly the limit is whole");
        let mut kept = Vec::new();
        let got = rt.block_on(receive(chunks(&[4, 4, 3]), 10, &Pace::start(), |c| keep(&mut kept, c)));
        assert!(matches!(got, Err(Cut::TooLong(10))), "{got:?}");
        assert_eq!(kept.len(), 8, "the chunk past the limit is not kept");
        let failing = futures_util::stream::iter([Ok(vec![1u8]), Err("reset".to_owned())]);
        assert!(matches!(rt.block_on(receive(failing, 10, &Pace::start(), |_| Ok(()))), Err(Cut::Stream(e)) if e == "reset"));
        let full = rt.block_on(receive(chunks(&[1]), 10, &Pace::start(), |_| Err(io::Error::other("disk full"))));
        assert!(matches!(full, Err(Cut::Sink(_))), "{full:?}");
        // A pace started long ago is past its grace with almost nothing received.
        let late = Pace(std::time::Instant::now() - PACE_GRACE - Duration::from_secs(60));
        assert!(matches!(rt.block_on(receive(chunks(&[1]), 10, &late, |_| Ok(()))), Err(Cut::Slow(_))));
    }

    use super::*;

    /// The pace a registry's blob and manifest downloads keep too (the APT side is driven end to
    /// end by `tests/debian.rs`): free in the grace period, then the average since the start.
    #[test]
    fn a_download_falls_below_the_pace_only_after_its_grace_period() {
        let at = |secs: u64| Pace(std::time::Instant::now() - Duration::from_secs(secs));
        assert!(at(20).check(0).is_ok());
        let late = at(40);
        assert!(late.check(9 * MIN_PACE).is_err(), "10 s past the grace asks for 10 s of the pace");
        assert!(late.check(11 * MIN_PACE).is_ok());
    }

    fn refused(s: &str) -> bool {
        classify(s.parse().unwrap()).is_some()
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for a in [
            "127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
            "169.254.1.1", "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1", "::1", "::", "fc00::1", "fd00:ec2::254",
            "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::", "ff02::1",
        ] {
            assert!(refused(a), "{a} should be refused");
        }
        for a in ["1.1.1.1", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "169.253.1.1"] {
            assert!(!refused(a), "{a} should be allowed");
        }
    }

    #[test]
    fn allowance_is_per_host_and_port() {
        let p = Policy { allow_private: ["127.0.0.1:5000".to_string()].into() };
        assert!(resolve_checked(&p, "127.0.0.1", 5000).is_ok());
        let err = resolve_checked(&p, "127.0.0.1", 5001).unwrap_err();
        assert!(err.to_string().contains("SSRF guard"), "{err}");
        assert!(matches!(resolve_checked(&Policy::default(), "localhost", 80), Err(GuardError::Refused(_))));
    }

    #[test]
    fn the_proxy_refuses_before_connecting() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let port = target.local_addr().unwrap().port();
        let proxy = Proxy::start(Policy::default()).unwrap();
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        write!(s, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("SSRF guard"), "{answer}");
        assert_eq!(proxy.refusals().len(), 1);
        assert!(target.accept().is_err(), "no connection may reach the refused address");
    }

    #[test]
    fn the_proxy_forwards_plain_http_to_allowed_hosts() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (s, _) = server.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut w = s;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").unwrap();
            first
        });
        let proxy = Proxy::start(Policy { allow_private: [format!("127.0.0.1:{port}")].into() }).unwrap();
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        write!(s, "GET http://127.0.0.1:{port}/v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("ok"), "{answer}");
        assert_eq!(t.join().unwrap(), "GET /v2/ HTTP/1.1\r\n");
    }
}

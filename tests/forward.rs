//! Ports without egress (issue 16): an 'isolated or 'none sandbox serves its declared port on
//! 127.0.0.1 through galley's forwarder while it reaches nothing; the forwarder outlives
//! restarts of the sandbox, is bounded, is proven by `galley verify` and goes with `destroy`.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::runner::{TestProject, free_port, podman_ok, text};
use support::runtime_available;

fn config(network: &str, port: u16) -> String {
    format!(
        r#"  images.box = {{}},
  sandboxes.web = galley.presets.service_on 8080 {port} & {{
    image = "box",
    user = "1000:1000",
    network = '{network},
    command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"],
  }},"#
    )
}

/// The pids of the project's forwarders, from /proc.
fn forwarders(p: &TestProject) -> Vec<u32> {
    let container = p.container("default", "web");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&&b"__forward"[..]) && args.contains(&container.as_bytes())
        })
        .collect()
}

/// A host listener on `address` answering `HOST` to every connection.
fn host_listener(address: IpAddr) -> u16 {
    let l = TcpListener::bind((address, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"HOST\n");
        }
    });
    port
}

/// Whether GET /bin/busybox through 127.0.0.1:`port` answers 200 with the whole file.
fn serves(port: u16) -> bool {
    let get = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /bin/busybox HTTP/1.0\r\n\r\n")?;
        let mut body = Vec::new();
        s.read_to_end(&mut body)?;
        Ok(body)
    };
    let size = std::fs::metadata("/bin/busybox").unwrap().len() as usize;
    get().is_ok_and(|r| r.starts_with(b"HTTP/1.1 200 OK") && r.len() > size)
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    (0..100).any(|_| {
        cond() || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    })
}

#[test]
fn an_isolated_sandbox_serves_its_port_on_loopback_reaches_nothing_and_survives_restarts() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("fwd").with_image("box");
    let port = free_port();
    p.config(&config("isolated", port));
    p.galley_code(&["lock"], 0);
    let applied = p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    assert!(
        wait_for(|| serves(port)),
        "the forwarded port does not answer: {applied}"
    );
    let container = p.container("default", "web");
    let published = podman_ok(&[
        "inspect",
        "--format",
        "{{json .HostConfig.PortBindings}}",
        &container,
    ]);
    assert!(
        matches!(published.trim(), "{}" | "null"),
        "podman publishes a port: {published}"
    );
    // The other half: no route out, and the host's listeners closed.
    let gw: IpAddr = podman_ok(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
        &container,
    ])
    .trim()
    .parse()
    .unwrap();
    let any = host_listener("0.0.0.0".parse().unwrap());
    let (_, out) = p.exec(
        "default",
        "web",
        &format!("/bin/busybox nc -w 2 {gw} {any} </dev/null; /bin/busybox ip route"),
    );
    assert!(!out.contains("HOST") && !out.contains("default"), "{out}");
    let report = p.galley_code(&["verify"], 0);
    assert!(
        report.contains("PASS  galley forwarded ports")
            && report.contains("PASS  galley no route out"),
        "{report}"
    );
    // podman restart (a new network namespace), then stop and start: the port answers again.
    podman_ok(&["restart", "--time", "0", &container]);
    assert!(wait_for(|| serves(port)), "not served after podman restart");
    podman_ok(&["stop", "--time", "0", &container]);
    assert!(!serves(port));
    podman_ok(&["start", &container]);
    assert!(
        wait_for(|| serves(port)),
        "not served after podman stop and start"
    );
    // A dead forwarder is a change apply repairs.
    let pids = forwarders(&p);
    assert_eq!(pids.len(), 1, "{pids:?}");
    // SAFETY: kill(2) on the forwarder this test's apply started.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    assert!(wait_for(|| !serves(port)));
    let plan = p.galley_code(&["plan"], 0);
    assert!(plan.contains("its port forwarder is not running"), "{plan}");
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    assert!(wait_for(|| serves(port)));
    // destroy takes the forwarder and the port with it.
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port outlives destroy"
    );
    assert!(forwarders(&p).is_empty());
}

#[test]
fn a_none_sandbox_serves_its_port_through_its_own_loopback() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("fwdnone").with_image("box");
    let port = free_port();
    p.config(&config("none", port));
    p.galley_code(&["lock"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    assert!(wait_for(|| serves(port)));
    let (_, links) = p.exec("default", "web", "/bin/busybox ip -o link");
    assert_eq!(links.lines().count(), 1, "{links}");
    let report = p.galley_code(&["verify"], 0);
    assert!(report.contains("PASS  galley forwarded ports"), "{report}");
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

#[test]
fn connections_past_the_forwarders_limit_are_closed_at_once() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("fwdcap").with_image("box");
    let port = free_port();
    p.config(&config("isolated", port));
    p.galley_code(&["lock"], 0);
    let out = p
        .galley_cmd(&["apply", "--auto-approve", "--locked"])
        .env("GALLEY_FORWARD_MAX_CONNECTIONS", "4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_for(|| serves(port)));
    // Let the forwarder finish the connections the probe made before counting ours.
    std::thread::sleep(Duration::from_secs(1));
    // httpd waits for a request: each of these holds a connection.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for mut h in &held {
        h.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let e = h.read(&mut [0u8; 1]).expect_err("a held connection was closed");
        assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 1];
    // Closed at once: end of file or a reset, never a read that waits (a carried connection).
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a fifth connection is carried: {other:?}"),
    }
    drop(held);
    assert!(
        wait_for(|| serves(port)),
        "the port does not answer once connections end"
    );
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Idle clients holding every slot (a slow-loris on the forwarder): with a limit of two
/// connections and `GALLEY_FORWARD_IDLE_SECONDS=2`, two clients that connect and send nothing are
/// closed after about two seconds, and the port serves again; a client that keeps talking is not.
#[test]
fn idle_connections_are_closed_after_the_idle_limit_and_free_their_slots() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("fwdidle").with_image("box");
    let port = free_port();
    p.config(&config("isolated", port));
    p.galley_code(&["lock"], 0);
    let out = p
        .galley_cmd(&["apply", "--auto-approve", "--locked"])
        .env("GALLEY_FORWARD_MAX_CONNECTIONS", "2")
        .env("GALLEY_FORWARD_IDLE_SECONDS", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_for(|| serves(port)));
    std::thread::sleep(Duration::from_secs(1));
    let started = std::time::Instant::now();
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!serves(port), "a third connection is carried while two idle ones hold the slots");
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        match c.read(&mut [0u8; 1]) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("an idle connection was not closed: {other:?} after {:?}", started.elapsed()),
        }
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(9), "closed after {waited:?}");
    assert!(wait_for(|| serves(port)), "the slots of closed idle connections are not free again");
    // A request written a few bytes at a time, over twice the idle limit, is still answered.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for chunk in b"GET /bin/busybox HTTP/1.0\r\n\r\n".chunks(4) {
        slow.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(600));
    }
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 15];
    slow.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

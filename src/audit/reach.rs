//! What a sandbox can reach and what reaches it: the host side of its networks is closed (the
//! firewall state the caller read into [`Context::host_side`]), a sandbox without egress has no
//! route out of its network in the kernel's own table, and each port of a sandbox without egress
//! answers on its loopback address through galley's forwarder, with a listener behind it in the
//! sandbox's own network namespace.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::*;
use crate::model::Network;

/// How long a forwarded connection is watched for the forwarder closing it at once (as it does
/// when the sandbox refuses it). Staying open proves nothing by itself: a forwarder slowed by a
/// loaded host holds a refused connection longer, so a port passes only with a listener behind it
/// in the sandbox's network namespace too.
pub const FORWARD_PROBE: Duration = Duration::from_millis(300);

/// The networks the container is on, by name.
fn networks(o: &Observed) -> Vec<String> {
    o.inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(|n| n.as_object())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every check of this module that reads podman's record or the state the caller gathered;
/// `listeners` are the running sandbox's sockets ([`kernel::listeners`]), `None` when it is not running.
pub fn run(o: &Observed, m: &SandboxManifest, cx: &Context, listeners: Option<&kernel::Sockets>, sink: &mut Sink<'_>) {
    host_side(o, cx, sink);
    if m.network != Network::Egress {
        forwarded(listeners, m, sink);
    }
}

fn host_side(o: &Observed, cx: &Context, sink: &mut Sink<'_>) {
    let nets = networks(o);
    if nets.is_empty() {
        return;
    }
    sink.ran(HOST_SIDE);
    for n in nets {
        match cx.host_side.get(&n) {
            Some(Ok(())) => {}
            Some(Err(why)) => sink.fail(
                HOST_SIDE,
                format!("the host side of network {n} is open"),
                "galley's chain and its INPUT jump",
                why.clone(),
            ),
            None => sink.not_run(
                HOST_SIDE,
                format!("the firewall of network {n} was not read (reading iptables needs root)"),
            ),
        }
    }
}

/// Each declared port: a connection to its host address is not closed at once (the forwarder
/// listens and got in), and the kernel's table of the sandbox's network namespace (read from the
/// host, [`kernel::listeners`]) holds a TCP listener on the container port that the forwarder's
/// connection to 127.0.0.1 reaches; sockets that could not be read leave the check not run.
fn forwarded(inside: Option<&kernel::Sockets>, m: &SandboxManifest, sink: &mut Sink<'_>) {
    if m.ports.is_empty() {
        return;
    }
    sink.ran(FORWARD);
    for p in &m.ports {
        let at = SocketAddr::new(p.address, p.host);
        let shown = format!("{at}->{}/{}", p.container, p.protocol.as_str());
        let fail = |sink: &mut Sink<'_>, why: String| {
            sink.fail(FORWARD, format!("port {shown} does not reach the sandbox"), "a listener behind the forwarder", why)
        };
        if let Err(why) = probe(at) {
            fail(sink, why);
            continue;
        }
        match inside {
            None => fail(sink, "the sandbox is not running".into()),
            Some(Err(why)) => sink.not_run(FORWARD, why.clone()),
            Some(Ok(listeners)) if !listeners.iter().any(|l| reached_from_loopback(l, p.container)) => {
                fail(sink, format!("nothing listens on port {} inside the sandbox", p.container))
            }
            Some(_) => {}
        }
    }
}

/// Whether the forwarder's connection to 127.0.0.1:`port` inside the namespace reaches `l`: a TCP
/// listener on that port, bound to 127.0.0.1 or to every address (IPv4 or dual-stack IPv6).
fn reached_from_loopback(l: &kernel::Listener, port: u16) -> bool {
    l.protocol == crate::domain::Protocol::Tcp
        && l.port == port
        && matches!(l.address.as_str(), "0.0.0.0" | "127.0.0.1" | "::" | "::ffff:127.0.0.1")
}

/// Whether a connection to `at` is held open or answered (`Ok`), or refused or closed at once.
pub fn probe(at: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(FORWARD_PROBE))
        .map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => Err("closed at once".into()),
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

/// The kernel's view: a sandbox without egress has no default route, and a 'none sandbox no
/// interface but loopback (read from the host's `/proc/PID/net`, which the sandbox cannot write).
pub fn kernel(init: u32, m: &SandboxManifest, sink: &mut Sink<'_>) {
    if m.network == Network::Egress {
        return;
    }
    sink.ran(ROUTES);
    match std::fs::read_to_string(format!("/proc/{init}/net/route")) {
        Ok(table) => {
            for route in default_routes(&table) {
                sink.fail(
                    ROUTES,
                    format!("the sandbox has a route out ({route})"),
                    "no default route",
                    route,
                );
            }
        }
        Err(e) => sink.not_run(ROUTES, format!("/proc/{init}/net/route: {e}")),
    }
    if let Ok(table) = std::fs::read_to_string(format!("/proc/{init}/net/ipv6_route")) {
        for route in default_routes_v6(&table) {
            sink.fail(
                ROUTES,
                format!("the sandbox has an IPv6 route out ({route})"),
                "no default route",
                route,
            );
        }
    }
    if m.network == Network::None {
        match std::fs::read_to_string(format!("/proc/{init}/net/dev")) {
            Ok(dev) => {
                for iface in interfaces(&dev).into_iter().filter(|i| i != "lo") {
                    sink.fail(
                        ROUTES,
                        format!("a sandbox with network 'none has interface {iface}"),
                        "lo only",
                        iface,
                    );
                }
            }
            Err(e) => sink.not_run(ROUTES, format!("/proc/{init}/net/dev: {e}")),
        }
    }
}

/// Interfaces of IPv4 routes to 0.0.0.0/0 in `/proc/net/route`.
fn default_routes(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| format!("default via {}", f[0]))
        })
        .collect()
}

/// Interfaces of IPv6 routes to ::/0 in `/proc/net/ipv6_route` (loopback's unreachable route
/// left out).
fn default_routes_v6(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let default = f.len() == 10 && f[0].bytes().all(|b| b == b'0') && f[1] == "00";
            (default && f[9] != "lo").then(|| format!("default via {}", f[9]))
        })
        .collect()
}

fn interfaces(dev: &str) -> Vec<String> {
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_route_is_found_in_the_kernels_table() {
        let internal = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t0059000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert!(default_routes(internal).is_empty());
        let routed =
            format!("{internal}eth1\t00000000\t0158000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
        assert_eq!(default_routes(&routed), vec!["default via eth1"]);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n";
        assert_eq!(default_routes_v6(v6), vec!["default via eth0"]);
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        assert_eq!(interfaces(dev), vec!["lo", "eth0"]);
    }

    #[test]
    fn only_a_tcp_listener_the_forwarders_loopback_connection_reaches_counts() {
        let l = |protocol, address: &str, port| kernel::Listener { protocol, address: address.into(), port };
        use crate::domain::Protocol::{Tcp, Udp};
        for address in ["0.0.0.0", "127.0.0.1", "::"] {
            assert!(reached_from_loopback(&l(Tcp, address, 8080), 8080), "{address}");
        }
        assert!(!reached_from_loopback(&l(Tcp, "10.89.0.5", 8080), 8080), "bound to the sandbox's own address only");
        assert!(!reached_from_loopback(&l(Tcp, "::1", 8080), 8080), "IPv6 loopback, not reached from 127.0.0.1");
        assert!(!reached_from_loopback(&l(Udp, "0.0.0.0", 8080), 8080), "UDP");
        assert!(!reached_from_loopback(&l(Tcp, "0.0.0.0", 8081), 8080), "another port");
    }

    #[test]
    fn a_port_closed_at_once_does_not_reach_the_sandbox() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (first, _) = l.accept().unwrap();
            drop(first);
            let (held, _) = l.accept().unwrap();
            std::thread::sleep(FORWARD_PROBE * 2);
            drop(held);
        });
        assert_eq!(probe(at), Err("closed at once".into()));
        assert_eq!(probe(at), Ok(()));
        t.join().unwrap();
        assert!(probe(at).unwrap_err().starts_with("connect:"));
    }
}

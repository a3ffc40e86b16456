//! The listening sockets of a network namespace from the kernel's socket diagnostics
//! (`sock_diag(7)`), asked from inside that namespace.
//!
//! `/proc/PID/net/tcp` walks the host's whole table of TCP connections on every read, every
//! namespace's, to print the few of one: on a busy host that walk was most of a verify. A
//! `sock_diag` dump asked for listening TCP sockets only walks the listening table, and one for
//! bound UDP sockets the UDP table, as `/proc/PID/net/udp` does. The answer is the same set of
//! sockets `/proc` shows (the parity test below holds both to one namespace's sockets).
//!
//! A netlink socket answers for the namespace it was created in, so a short-lived thread enters
//! the sandbox's namespace (`setns(2)`, which needs root) to create it and make the dumps; the
//! thread ends with them. Where that cannot be done, the caller reads `/proc`.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::kernel::Listener;
use crate::domain::Protocol;

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCP_LISTEN`, the state of a listening TCP socket.
const TCP_LISTEN: u32 = 10;
/// `TCP_CLOSE`, the state of a bound, unconnected UDP socket.
const TCP_CLOSE: u32 = 7;
/// `NLM_F_DUMP_INTR`: the dump saw the table change under it.
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, the socket id (ports, addresses,
/// interface, cookie), then expiry, queues, uid and inode.
const INET_DIAG_MSG_LEN: usize = 72;
/// How long the kernel may take to answer one dump before the read gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a dump that saw its table change is asked again before the caller falls back.
const DUMP_TRIES: usize = 3;

/// The dumps that make up the listeners: listening TCP and bound UDP sockets, each family.
const DUMPS: [(u8, u8, Protocol, u32); 4] = [
    (libc::AF_INET as u8, libc::IPPROTO_TCP as u8, Protocol::Tcp, TCP_LISTEN),
    (libc::AF_INET6 as u8, libc::IPPROTO_TCP as u8, Protocol::Tcp, TCP_LISTEN),
    (libc::AF_INET as u8, libc::IPPROTO_UDP as u8, Protocol::Udp, TCP_CLOSE),
    (libc::AF_INET6 as u8, libc::IPPROTO_UDP as u8, Protocol::Udp, TCP_CLOSE),
];

/// Listening TCP sockets and bound UDP sockets (port other than 0) in the network namespace
/// `ns` names (`/proc/PID/ns/net`). An error when the namespace cannot be entered (not root),
/// the kernel has no diagnostics for a protocol, or a dump does not finish.
pub fn listeners(ns: &Path) -> io::Result<BTreeSet<Listener>> {
    let ns = File::open(ns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) changes the network namespace of this thread only, which ends
            // with this closure; `ns` is an open namespace file.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let socket = DiagSocket::open()?;
            let mut out = BTreeSet::new();
            for (seq, (family, protocol, kind, state)) in (1u32..).zip(DUMPS) {
                out.extend(socket.dump(seq, family, protocol, state)?.into_iter().map(|(address, port)| Listener {
                    protocol: kind,
                    address,
                    port,
                }));
            }
            Ok(out)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the socket diagnostics thread panicked")))
    })
}

/// A `NETLINK_SOCK_DIAG` socket of the calling thread's network namespace.
struct DiagSocket(OwnedFd);

impl DiagSocket {
    fn open() -> io::Result<DiagSocket> {
        // SAFETY: socket(2) with constant arguments; a valid descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let socket = DiagSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        let timeout = libc::timeval { tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
        // SAFETY: the option value is a timeval that lives across the call, with its size.
        let set = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    /// The local address and port of every socket of `family`/`protocol` in `state`, asked
    /// again when the kernel says the table changed during the dump.
    fn dump(&self, seq: u32, family: u8, protocol: u8, state: u32) -> io::Result<Vec<(String, u16)>> {
        for _ in 0..DUMP_TRIES {
            self.send(&request(seq, family, protocol, state))?;
            if let Some(found) = self.answer(seq)? {
                return Ok(found);
            }
        }
        Err(io::Error::other(format!("the socket table of family {family} kept changing during {DUMP_TRIES} dumps")))
    }

    fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: a zeroed sockaddr_nl is the kernel's address (pid 0, no groups) once its
        // family is set.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `message` and `kernel` are valid for their lengths across the call.
        let sent = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&raw const kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        match sent {
            n if n < 0 => Err(io::Error::last_os_error()),
            n if n as usize != message.len() => Err(io::Error::other("the socket diagnostics request was cut short")),
            _ => Ok(()),
        }
    }

    /// Read one dump to its end: the sockets, or `None` when the kernel marked it interrupted.
    fn answer(&self, seq: u32) -> io::Result<Option<Vec<(String, u16)>>> {
        let mut buf = vec![0u8; 64 << 10];
        let mut found = Vec::new();
        let mut interrupted = false;
        loop {
            // SAFETY: `buf` is valid for writes of its length across the call.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            match parse(&buf[..n as usize], seq, &mut found)? {
                Batch::More { interrupted: i } => interrupted |= i,
                Batch::Done { interrupted: i } => return Ok((!(interrupted || i)).then_some(found)),
            }
        }
    }
}

/// A dump request: `nlmsghdr` then `inet_diag_req_v2` for the sockets of one family and
/// protocol whose state is `state`, with no extensions and any socket id.
fn request(seq: u32, family: u8, protocol: u8, state: u32) -> Vec<u8> {
    const REQ_LEN: usize = 8 + 48;
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + REQ_LEN);
    m.extend(((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    m.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend(seq.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.extend([family, protocol, 0, 0]);
    m.extend((1u32 << state).to_ne_bytes());
    m.resize(NLMSG_HDRLEN + REQ_LEN, 0);
    m
}

enum Batch {
    More { interrupted: bool },
    Done { interrupted: bool },
}

/// The messages of one datagram of a dump, their sockets added to `found`.
fn parse(mut datagram: &[u8], seq: u32, found: &mut Vec<(String, u16)>) -> io::Result<Batch> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("socket diagnostics: {what}"));
    let u16_at = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut interrupted = false;
    while !datagram.is_empty() {
        if datagram.len() < NLMSG_HDRLEN {
            return Err(bad("a message header is cut short"));
        }
        let len = u32_at(datagram, 0) as usize;
        let (kind, flags, their_seq) = (u16_at(datagram, 4), u16_at(datagram, 6), u32_at(datagram, 8));
        if len < NLMSG_HDRLEN || len > datagram.len() {
            return Err(bad("a message's length is outside its datagram"));
        }
        let body = &datagram[NLMSG_HDRLEN..len];
        datagram = &datagram[((len + 3) & !3).min(datagram.len())..];
        if their_seq != seq {
            continue;
        }
        interrupted |= flags & NLM_F_DUMP_INTR != 0;
        match i32::from(kind) {
            libc::NLMSG_DONE => {
                // Since Linux 4.x the end of a dump carries its error, if any.
                if body.len() >= 4 && (u32_at(body, 0) as i32) < 0 {
                    return Err(io::Error::from_raw_os_error(-(u32_at(body, 0) as i32)));
                }
                return Ok(Batch::Done { interrupted });
            }
            libc::NLMSG_ERROR => {
                let code = if body.len() >= 4 { u32_at(body, 0) as i32 } else { -libc::EPROTO };
                return Err(io::Error::from_raw_os_error(-code));
            }
            _ if kind == SOCK_DIAG_BY_FAMILY => {
                if body.len() < INET_DIAG_MSG_LEN {
                    return Err(bad("a socket's message is cut short"));
                }
                let port = u16::from_be_bytes([body[4], body[5]]);
                let source: [u8; 16] = body[8..24].try_into().expect("16 bytes");
                let address = match i32::from(body[0]) {
                    libc::AF_INET => Ipv4Addr::new(source[0], source[1], source[2], source[3]).to_string(),
                    libc::AF_INET6 => Ipv6Addr::from(source).to_string(),
                    _ => return Err(bad("a socket of another family")),
                };
                if port != 0 {
                    found.push((address, port));
                }
            }
            _ => {}
        }
    }
    Ok(Batch::More { interrupted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(body);
        m
    }

    fn socket(family: i32, port: u16, address: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; INET_DIAG_MSG_LEN];
        b[0] = family as u8;
        b[4..6].copy_from_slice(&port.to_be_bytes());
        b[8..8 + address.len()].copy_from_slice(address);
        b
    }

    #[test]
    fn a_dump_is_read_to_its_end_and_an_error_or_interruption_is_not_a_pass() {
        let mut found = Vec::new();
        let mut d = message(SOCK_DIAG_BY_FAMILY, 2, 7, &socket(libc::AF_INET, 8080, &[127, 0, 0, 1]));
        d.extend(message(SOCK_DIAG_BY_FAMILY, 2, 7, &socket(libc::AF_INET6, 53, &Ipv6Addr::LOCALHOST.octets())));
        // A socket of port 0 is not a listener; a stray message of another request is ignored.
        d.extend(message(SOCK_DIAG_BY_FAMILY, 2, 7, &socket(libc::AF_INET, 0, &[0; 4])));
        d.extend(message(SOCK_DIAG_BY_FAMILY, 2, 9, &socket(libc::AF_INET, 22, &[0; 4])));
        assert!(matches!(parse(&d, 7, &mut found).unwrap(), Batch::More { interrupted: false }));
        assert_eq!(found, [("127.0.0.1".to_owned(), 8080), ("::1".to_owned(), 53)]);
        assert!(matches!(parse(&message(3, 2, 7, &0i32.to_ne_bytes()), 7, &mut found).unwrap(), Batch::Done { interrupted: false }));
        assert!(matches!(parse(&message(3, NLM_F_DUMP_INTR, 7, &0i32.to_ne_bytes()), 7, &mut found).unwrap(), Batch::Done { interrupted: true }));
        let error = parse(&message(2, 0, 7, &(-libc::ENOENT).to_ne_bytes()), 7, &mut found).err().unwrap();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        let failed_dump = parse(&message(3, 2, 7, &(-libc::EINTR).to_ne_bytes()), 7, &mut found).err().unwrap();
        assert_eq!(failed_dump.raw_os_error(), Some(libc::EINTR));
        // A length pointing past the datagram, or a socket message cut short, is refused.
        let mut long = message(SOCK_DIAG_BY_FAMILY, 2, 7, &socket(libc::AF_INET, 1, &[0; 4]));
        long[0] = 200;
        assert!(parse(&long, 7, &mut found).is_err());
        assert!(parse(&message(SOCK_DIAG_BY_FAMILY, 2, 7, &[0; 10]), 7, &mut found).is_err());
    }

    /// The sockets of a fresh network namespace, read both ways from outside it, are the same
    /// set: the ones bound in it, and not a listener of the host's.
    #[test]
    fn a_namespaces_listeners_are_the_same_from_its_socket_diagnostics_as_from_proc() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: entering a network namespace needs root (CI runs this as root)");
            return;
        }
        let host = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let inside = std::thread::spawn(move || {
            // SAFETY: unshare(2) of the network namespace of this thread only.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "{}", io::Error::last_os_error());
            let sockets = (
                TcpListener::bind("0.0.0.0:4100").unwrap(),
                TcpListener::bind("[::]:4106").unwrap(),
                UdpSocket::bind("0.0.0.0:4200").unwrap(),
                UdpSocket::bind("[::]:4206").unwrap(),
            );
            // SAFETY: gettid has no preconditions.
            ready_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
            drop(sockets);
        });
        let tid = ready_rx.recv().unwrap();
        let task = format!("/proc/self/task/{tid}");
        let from_diag = listeners(Path::new(&format!("{task}/ns/net")));
        let from_proc = super::super::kernel::listeners_from_proc(Path::new(&task)).unwrap();
        done_tx.send(()).unwrap();
        inside.join().unwrap();
        let from_diag = from_diag.unwrap();
        let l = |protocol, address: &str, port| Listener { protocol, address: address.into(), port };
        let expected: BTreeSet<Listener> = [
            l(Protocol::Tcp, "0.0.0.0", 4100),
            l(Protocol::Tcp, "::", 4106),
            l(Protocol::Udp, "0.0.0.0", 4200),
            l(Protocol::Udp, "::", 4206),
        ]
        .into();
        assert_eq!(from_diag, expected);
        assert_eq!(from_proc, expected);
        assert!(!from_diag.iter().any(|x| x.port == host.local_addr().unwrap().port()));
    }
}

//! Published ports checked against what will carry them: podman publishes the ports of an
//! 'egress sandbox, galley's forwarder (TCP only) those of a sandbox without egress, so a UDP
//! port there is refused; and two publishes clash when their host addresses overlap on the same port and protocol
//! (`0.0.0.0` covers every IPv4 address, `::` every IPv6 address and, dual-stack, IPv4 too).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diagnostic::{Code, Diagnostic};
use crate::domain::{PortBinding, Protocol};
use crate::lang::SpanIndex;
use crate::model::{Network, Project};

/// One publish of the project, where it was written.
struct Publish<'a> {
    port: &'a PortBinding,
    field: String,
    sandbox: &'a str,
}

pub fn run(project: &Project, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    // Publishes grouped by (host port, protocol): only those can clash, so the comparison is
    // within a group, and the whole pass stays linear for ports that are all distinct.
    let mut groups: BTreeMap<(u16, Protocol), Vec<Publish<'_>>> = BTreeMap::new();
    for (name, sandbox) in &project.sandboxes {
        let at = format!("sandboxes.{name}");
        // Without egress, galley's forwarder carries the sandbox's ports into its network
        // namespace; it carries TCP only, and apply refuses a UDP port there.
        if sandbox.network != Network::Egress {
            for (i, port) in sandbox.ports.iter().enumerate().filter(|(_, p)| p.protocol == Protocol::Udp) {
                out.push(
                    Diagnostic::new(
                        Code::UdpWithoutEgress,
                        format!("sandbox `{name}` publishes UDP port {} but has no egress: galley forwards only TCP into a sandbox without a route out, and `galley apply` refuses it", port.host),
                    )
                    .at(spans.locate_value(&format!("{at}.ports[{i}].protocol")))
                    .help("serve it over TCP, or set network = 'egress on this sandbox so podman publishes the UDP port itself"),
                );
            }
        }
        for (i, port) in sandbox.ports.iter().enumerate() {
            let field = format!("{at}.ports[{i}]");
            if !port.address.is_loopback() {
                out.push(
                    Diagnostic::new(Code::PublicPort, format!("port {} is published on {}, reachable from other machines", port.host, port.address))
                        .at(spans.locate_value(&format!("{field}.address")))
                        .help("publish on \"127.0.0.1\" (the default) and put a reverse proxy in front if others need it"),
                );
            }
            let group = groups.entry((port.host, port.protocol)).or_default();
            if let Some(first) = group.iter().find(|p| overlap(p.port.address, port.address)) {
                let same = canonical(first.port.address) == canonical(port.address);
                let how = if same {
                    String::new()
                } else {
                    format!(" ({} and {} overlap)", first.port.address, port.address)
                };
                let by = if first.sandbox == name.as_str() { first.field.clone() } else { format!("sandbox `{}` at {}", first.sandbox, first.field) };
                out.push(
                    Diagnostic::new(
                        Code::PortTwice,
                        format!("host port {}/{} on {} is already published by {by}{how}", port.host, port.protocol.as_str(), port.address),
                    )
                    .at(spans.locate_value(&format!("{field}.host")))
                    .help(if same {
                        "give each published port its own host port".to_owned()
                    } else {
                        "give each published port its own host port: a wildcard address (0.0.0.0, ::) takes the port on every address it covers".to_owned()
                    }),
                );
            }
            group.push(Publish { port, field, sandbox: name });
        }
    }
}

/// The address an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) stands for.
fn canonical(a: IpAddr) -> IpAddr {
    a.to_canonical()
}

/// Whether binding `a` and `b` on one port would conflict on the host.
pub fn overlap(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (canonical(a), canonical(b));
    a == b || covers(a, b) || covers(b, a)
}

/// Whether wildcard `w` takes the port on `other`. `::` is dual-stack: podman's port forwarder
/// listens on IPv4 too unless the host sets net.ipv6.bindv6only, so it is taken to cover both.
fn covers(w: IpAddr, other: IpAddr) -> bool {
    match w {
        IpAddr::V4(w) => w.is_unspecified() && other.is_ipv4(),
        IpAddr::V6(w) => w.is_unspecified(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wildcards_cover_the_addresses_of_their_family_and_dual_stack_covers_both() {
        assert!(overlap(ip("0.0.0.0"), ip("127.0.0.1")));
        assert!(overlap(ip("127.0.0.1"), ip("0.0.0.0")));
        assert!(overlap(ip("::"), ip("::1")));
        assert!(overlap(ip("::"), ip("127.0.0.1")));
        assert!(overlap(ip("0.0.0.0"), ip("::")));
        assert!(overlap(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!overlap(ip("0.0.0.0"), ip("::1")));
        assert!(!overlap(ip("127.0.0.1"), ip("127.0.0.2")));
        assert!(!overlap(ip("127.0.0.1"), ip("::1")));
    }
}

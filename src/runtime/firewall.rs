//! The host side of every sandbox network, closed: packets a sandbox sends to the host itself
//! (the bridge's gateway address, or any other address of the host) are dropped, except DNS to
//! aardvark-dns on the gateway and replies to connections the host opened (conntrack
//! ESTABLISHED,RELATED: published ports, the port forwarder, `podman exec`'s peers).
//!
//! Each network gets its own chain, named from the network's name alone ([`chain`]), in iptables
//! (IPv4) and ip6tables (the bridge's link-local address is the host too), with one jump to it
//! from INPUT for the bridge interface, tagged with a comment naming the network. Installing is
//! idempotent (a chain already as expected is left alone); removing takes the jump and the chain
//! away; [`orphans`] finds chains whose network podman no longer has. iptables is what netavark
//! 1.4 drives; a DROP in any netfilter base chain is final, so the rules hold whichever of
//! iptables-legacy or iptables-nft is installed, and alongside another tool's tables.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::podman::Podman;
use super::{Result, RuntimeError};
use crate::exec::{Cmd, Runner};

/// The prefix of every chain galley installs; the comment prefix of every jump to one.
pub const CHAIN_PREFIX: &str = "GALLEY-HOST-";
const COMMENT_PREFIX: &str = "galley host side of ";
/// How long iptables waits for the xtables lock (netavark and other helpers take it too).
const LOCK_WAIT_SECONDS: &str = "10";

/// The two firewall tools: IPv4 and IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// The families this host has: IPv6 only when the kernel has it.
    pub fn on_host() -> Vec<Family> {
        if std::path::Path::new("/proc/net/if_inet6").exists() {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }
}

/// A bridge interface name as the kernel accepts it: 1 to 15 bytes, no `/`, whitespace or NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface(String);

impl Interface {
    pub fn parse(name: &str) -> Option<Interface> {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.starts_with('-');
        ok.then(|| Interface(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the rules of one network are made from: its name, bridge and gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSide {
    pub network: String,
    pub interface: Interface,
    pub gateways: Vec<IpAddr>,
}

/// The chain of `network`: `GALLEY-HOST-` and 12 hex digits of the SHA-256 of its name (24
/// characters; iptables allows 28).
pub fn chain(network: &str) -> String {
    format!(
        "{CHAIN_PREFIX}{}",
        &hex::encode(Sha256::digest(network.as_bytes()))[..12]
    )
}

fn comment(network: &str) -> String {
    format!("{COMMENT_PREFIX}{network}")
}

impl HostSide {
    /// Read `network`'s bridge and gateways from `podman network inspect`.
    pub fn inspect(podman: &Podman<'_>, network: &str) -> Result<HostSide> {
        let out = podman
            .runner
            .check(&podman.cmd().args(["network", "inspect", network]))?;
        HostSide::parse(network, &out.stdout)
    }

    pub fn parse(network: &str, inspect: &[u8]) -> Result<HostSide> {
        let bad = |message: String| RuntimeError::Parse {
            command: "network inspect".into(),
            message,
        };
        let all: Vec<serde_json::Value> =
            serde_json::from_slice(inspect).map_err(|e| bad(e.to_string()))?;
        let n = all
            .first()
            .ok_or_else(|| bad(format!("no network {network}")))?;
        let iface = n
            .get("network_interface")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let interface = Interface::parse(iface).ok_or_else(|| {
            bad(format!(
                "network {network} has no usable bridge name ({iface:?})"
            ))
        })?;
        let gateways = n
            .get("subnets")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("gateway")?.as_str()?.parse::<IpAddr>().ok())
            .collect();
        Ok(HostSide {
            network: network.to_owned(),
            interface,
            gateways,
        })
    }

    /// The chain's rules as `iptables -S CHAIN` prints them, in order.
    pub fn rules(&self, family: Family) -> Vec<String> {
        let c = chain(&self.network);
        let mut rules = vec![
            format!("-N {c}"),
            format!("-A {c} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"),
        ];
        for gw in self.gateways.iter().filter(|g| {
            matches!(
                (g, family),
                (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
            )
        }) {
            let prefix = if gw.is_ipv4() { 32 } else { 128 };
            for proto in ["udp", "tcp"] {
                rules.push(format!(
                    "-A {c} -d {gw}/{prefix} -p {proto} -m {proto} --dport 53 -j RETURN"
                ));
            }
        }
        rules.push(format!("-A {c} -j DROP"));
        rules
    }

    /// The INPUT rule that sends the bridge's packets to the chain (without `-A`/`-I`/`-C`).
    pub fn jump(&self) -> Vec<String> {
        let comment = comment(&self.network);
        [
            "-i",
            self.interface.as_str(),
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            &chain(&self.network),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn tool(family: Family) -> Cmd {
    Cmd::new(family.tool())
        .args(["-w", LOCK_WAIT_SECONDS])
        .timeout(std::time::Duration::from_secs(30))
}

/// `iptables -S chain`. iptables-nft can answer a listing with "incompatible" while another
/// process rewrites the ruleset (parallel applies, netavark); such a listing is read again, a few
/// times, before its answer counts.
fn list(runner: &dyn Runner, family: Family, chain: &str) -> std::result::Result<crate::exec::Output, crate::exec::ExecError> {
    let mut tries = 0;
    loop {
        // An empty chain name lists the whole filter table.
        let out = runner.run(&tool(family).arg("-S").args((!chain.is_empty()).then_some(chain)))?;
        tries += 1;
        if out.success() || tries == 5 || !out.stderr_str().contains("incompatible") {
            return Ok(out);
        }
        std::thread::sleep(std::time::Duration::from_millis(20 * tries));
    }
}

fn firewall_error(network: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Host {
        sandbox: "*".into(),
        message: format!("cannot close the host side of network {network}: {e}"),
        help: "galley installs iptables and ip6tables rules for every sandbox network, which needs root (rootful podman) and the iptables package".into(),
    }
}

/// Make the rules of `side` what [`HostSide::rules`] says, and the jump to them present: the
/// chain is rewritten only when it differs, so a second install changes nothing.
pub fn install(runner: &dyn Runner, side: &HostSide) -> Result<()> {
    let c = chain(&side.network);
    for family in Family::on_host() {
        let want = side.rules(family);
        let have = list(runner, family, &c)
            .map_err(|e| firewall_error(&side.network, e))?;
        if !have.success() {
            runner
                .check(&tool(family).args(["-N", &c]))
                .map_err(|e| firewall_error(&side.network, e))?;
        }
        let lines: Vec<String> = have.stdout_str().lines().map(str::to_owned).collect();
        if lines != want {
            runner
                .check(&tool(family).args(["-F", &c]))
                .map_err(|e| firewall_error(&side.network, e))?;
            for rule in &want[1..] {
                let args: Vec<&str> = rule.split(' ').collect();
                runner
                    .check(&tool(family).args(args))
                    .map_err(|e| firewall_error(&side.network, e))?;
            }
        }
        let jump = side.jump();
        if !runner
            .run(&tool(family).args(["-C", "INPUT"]).args(&jump))
            .map_err(|e| firewall_error(&side.network, e))?
            .success()
        {
            runner
                .check(&tool(family).args(["-I", "INPUT", "1"]).args(&jump))
                .map_err(|e| firewall_error(&side.network, e))?;
        }
    }
    Ok(())
}

/// Remove `network`'s jumps from INPUT and its chain, whatever interface the jumps name; a
/// network without rules is not an error.
pub fn remove(runner: &dyn Runner, network: &str) -> Result<()> {
    let c = chain(network);
    for family in Family::on_host() {
        let input = list(runner, family, "INPUT")
            .map_err(|e| firewall_error(network, e))?;
        // Each step may race another galley removing the same orphan: failures are ignored and
        // what is left is checked at the end.
        for line in input
            .stdout_str()
            .lines()
            .filter(|l| l.ends_with(&format!("-j {c}")))
        {
            let Some(rest) = line.strip_prefix("-A INPUT ") else {
                continue;
            };
            runner
                .run(&tool(family).args(["-D", "INPUT"]).args(split_rule(rest)))
                .map_err(|e| firewall_error(network, e))?;
        }
        if list(runner, family, &c)
            .map_err(|e| firewall_error(network, e))?
            .success()
        {
            runner
                .run(&tool(family).args(["-F", &c]))
                .map_err(|e| firewall_error(network, e))?;
            let gone = runner
                .run(&tool(family).args(["-X", &c]))
                .map_err(|e| firewall_error(network, e))?;
            if !gone.success()
                && list(runner, family, &c)
                    .map_err(|e| firewall_error(network, e))?
                    .success()
            {
                return Err(firewall_error(
                    network,
                    format!("{} -X {c}: {}", family.tool(), gone.stderr_str().trim()),
                ));
            }
        }
    }
    Ok(())
}

/// Split a rule as `iptables -S` prints it into arguments: words, with `"..."` kept whole.
fn split_rule(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for ch in rule.chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The networks named in galley's INPUT jumps (from their comments).
pub fn installed(runner: &dyn Runner) -> Result<Vec<String>> {
    let input = list(runner, Family::V4, "INPUT")
        .map_err(|e| firewall_error("*", e))?;
    let mut names: Vec<String> = input
        .stdout_str()
        .lines()
        .filter(|l| l.contains(&format!("-j {CHAIN_PREFIX}")))
        .filter_map(|l| {
            split_rule(l)
                .iter()
                .position(|w| w == "--comment")
                .and_then(|i| split_rule(l).get(i + 1).cloned())
        })
        .filter_map(|c| c.strip_prefix(COMMENT_PREFIX).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Installed networks podman no longer has: what `apply` and `destroy` remove as orphans.
pub fn orphans(runner: &dyn Runner, podman: &Podman<'_>) -> Result<Vec<String>> {
    let installed = installed(runner)?;
    if installed.is_empty() {
        return Ok(installed);
    }
    let out = runner.check(
        &podman
            .cmd()
            .args(["network", "ls", "--format", "{{.Name}}"]),
    )?;
    let live: Vec<String> = out.stdout_str().lines().map(str::to_owned).collect();
    // A listing taken while other processes create and remove networks can miss a live one, and
    // removing a live network's rules would open its host side: each candidate must be gone by
    // podman's own answer for that name (`network exists` exits 1) before it counts.
    Ok(installed
        .into_iter()
        .filter(|n| !live.contains(n))
        .filter(|n| {
            runner
                .run(&podman.cmd().args(["network", "exists", n]))
                .is_ok_and(|o| o.code == Some(1))
        })
        .collect())
}

/// Close the host side of each of `networks` (podman's names), reading each one's bridge; then
/// remove the rules of networks podman no longer has (best effort: another galley may be
/// removing the same ones).
pub fn close(podman: &Podman<'_>, networks: &[String]) -> Result<()> {
    for network in networks {
        install(podman.runner, &HostSide::inspect(podman, network)?)?;
    }
    for gone in orphans(podman.runner, podman).unwrap_or_default() {
        let _ = remove(podman.runner, &gone);
    }
    Ok(())
}

/// Of `networks`, those whose host side is open; none when galley is not root (rootless podman's
/// networks live in its own namespace, and the host's firewall cannot be read).
pub fn open(podman: &Podman<'_>, networks: &[String]) -> Vec<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Vec::new();
    }
    if networks.is_empty() {
        return Vec::new();
    }
    // One reading of the firewall and one `network inspect` for them all; a network missing
    // from the answer counts as open.
    let table = Snapshot::read(podman.runner);
    let inspect = podman.runner.check(&podman.cmd().args(["network", "inspect"]).args(networks));
    let all: Vec<serde_json::Value> = inspect.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default();
    networks
        .iter()
        .filter(|n| {
            let one = all.iter().find(|v| v.get("name").and_then(|x| x.as_str()) == Some(n.as_str()));
            one.ok_or_else(|| format!("podman has no network {n}"))
                .and_then(|v| HostSide::parse(n, &serde_json::to_vec(&[v]).unwrap_or_default()).map_err(|e| e.to_string()))
                .and_then(|side| table.status(&side))
                .is_err()
        })
        .cloned()
        .collect()
}

/// Whether the host side of `side` is closed as [`install`] leaves it: `Ok(())`, or what is
/// missing or different.
pub fn status(runner: &dyn Runner, side: &HostSide) -> std::result::Result<(), String> {
    let c = chain(&side.network);
    for family in Family::on_host() {
        let have = list(runner, family, &c)
            .map_err(|e| e.to_string())?;
        if !have.success() {
            let why = have.stderr_str();
            return Err(format!(
                "{} has no chain {c} ({})",
                family.tool(),
                why.trim()
            ));
        }
        let lines: Vec<String> = have.stdout_str().lines().map(str::to_owned).collect();
        if lines != side.rules(family) {
            return Err(format!(
                "{} chain {c} holds {:?}, not {:?}",
                family.tool(),
                lines,
                side.rules(family)
            ));
        }
        let jump = side.jump();
        let input = list(runner, family, "INPUT")
            .map_err(|e| e.to_string())?;
        let first = input
            .stdout_str()
            .lines()
            .position(|l| split_rule(l).get(2..) == Some(&jump[..]));
        if first.is_none() {
            return Err(format!(
                "{} INPUT does not send {}'s packets to {c}",
                family.tool(),
                side.interface.as_str()
            ));
        }
    }
    Ok(())
}

/// The filter table of each family, read once (`iptables -S`), to tell [`status`] of many
/// networks from one reading.
pub struct Snapshot(Vec<(Family, std::result::Result<Vec<String>, String>)>);

impl Snapshot {
    pub fn read(runner: &dyn Runner) -> Snapshot {
        let read = |family| {
            let out = list(runner, family, "").map_err(|e| e.to_string())?;
            if !out.success() {
                return Err(format!("{} -S: {}", family.tool(), out.stderr_str().trim()));
            }
            Ok(out.stdout_str().lines().map(str::to_owned).collect())
        };
        Snapshot(Family::on_host().into_iter().map(|f| (f, read(f))).collect())
    }

    /// What [`status`] says of `side`, from this reading.
    pub fn status(&self, side: &HostSide) -> std::result::Result<(), String> {
        let c = chain(&side.network);
        for (family, table) in &self.0 {
            let table = table.as_ref().map_err(Clone::clone)?;
            let lines: Vec<String> = table.iter().filter(|l| **l == format!("-N {c}") || l.starts_with(&format!("-A {c} "))).cloned().collect();
            if lines.is_empty() {
                return Err(format!("{} has no chain {c}", family.tool()));
            }
            if lines != side.rules(*family) {
                return Err(format!("{} chain {c} holds {:?}, not {:?}", family.tool(), lines, side.rules(*family)));
            }
            let jump = side.jump();
            if !table.iter().filter(|l| l.starts_with("-A INPUT ")).any(|l| split_rule(l).get(2..) == Some(&jump[..])) {
                return Err(format!("{} INPUT does not send {}'s packets to {c}", family.tool(), side.interface.as_str()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};

    fn side() -> HostSide {
        let inspect = br#"[{"name":"galley-p-default","network_interface":"podman7","subnets":[{"subnet":"10.89.3.0/24","gateway":"10.89.3.1"}]}]"#;
        HostSide::parse("galley-p-default", inspect).unwrap()
    }

    #[test]
    fn one_reading_of_the_table_tells_each_networks_host_side() {
        let s = side();
        let c = chain(&s.network);
        let jump = format!("-A INPUT -i podman7 -m comment --comment \"galley host side of {}\" -j {c}", s.network);
        let mut table: Vec<String> = vec!["-P INPUT ACCEPT".into(), "-N OTHER".into()];
        table.extend(s.rules(Family::V4).into_iter().take(1));
        table.push(jump.clone());
        table.extend(s.rules(Family::V4).into_iter().skip(1));
        table.push("-A OTHER -j DROP".into());
        let closed = Snapshot(vec![(Family::V4, Ok(table.clone()))]);
        assert_eq!(closed.status(&s), Ok(()));
        let no_jump = Snapshot(vec![(Family::V4, Ok(table.iter().filter(|l| **l != jump).cloned().collect()))]);
        assert!(no_jump.status(&s).unwrap_err().contains("INPUT does not send podman7's packets"));
        let changed = Snapshot(vec![(Family::V4, Ok(table.iter().filter(|l| !l.contains("--dport 53")).cloned().collect()))]);
        assert!(changed.status(&s).unwrap_err().contains(&format!("chain {c} holds")));
        let none = Snapshot(vec![(Family::V4, Ok(vec!["-P INPUT ACCEPT".into()]))]);
        assert!(none.status(&s).unwrap_err().contains(&format!("has no chain {c}")));
        let unread = Snapshot(vec![(Family::V4, Err("iptables -S: permission denied".into()))]);
        assert_eq!(unread.status(&s), Err("iptables -S: permission denied".into()));
    }

    #[test]
    fn the_chain_is_named_from_the_network_alone_and_fits_iptables() {
        let c = chain("galley-p-default");
        assert_eq!(c, chain("galley-p-default"));
        assert_ne!(c, chain("galley-p-default-egress"));
        assert!(c.len() <= 28 && c.starts_with(CHAIN_PREFIX), "{c}");
    }

    #[test]
    fn rules_drop_everything_but_replies_and_dns_to_the_gateway() {
        let s = side();
        let c = chain(&s.network);
        assert_eq!(
            s.rules(Family::V4),
            vec![
                format!("-N {c}"),
                format!("-A {c} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"),
                format!("-A {c} -d 10.89.3.1/32 -p udp -m udp --dport 53 -j RETURN"),
                format!("-A {c} -d 10.89.3.1/32 -p tcp -m tcp --dport 53 -j RETURN"),
                format!("-A {c} -j DROP"),
            ]
        );
        assert_eq!(
            s.rules(Family::V6).len(),
            3,
            "no IPv6 gateway: replies, then drop"
        );
        assert_eq!(s.jump()[..2], ["-i".to_owned(), "podman7".to_owned()]);
    }

    #[test]
    fn a_bridge_name_that_is_not_an_interface_is_refused() {
        for bad in ["", "-j", "a b", "x/y", "sixteen-chars-xx"] {
            assert!(Interface::parse(bad).is_none(), "{bad}");
        }
        let inspect = br#"[{"name":"n","network_interface":"a b","subnets":[]}]"#;
        assert!(HostSide::parse("n", inspect).is_err());
    }

    #[test]
    fn install_is_idempotent_and_rewrites_only_a_changed_chain() {
        let s = side();
        let r = Recorder::default();
        let chain_text = s.rules(Family::V4).join("\n") + "\n";
        r.answer(
            &format!("iptables -w 10 -S {}", chain(&s.network)),
            Output {
                code: Some(0),
                stdout: chain_text.into_bytes(),
                ..Output::default()
            },
        );
        r.answer(
            "iptables -w 10 -C INPUT",
            Output {
                code: Some(0),
                ..Output::default()
            },
        );
        r.answer(
            &format!("ip6tables -w 10 -S {}", chain(&s.network)),
            Output {
                code: Some(1),
                ..Output::default()
            },
        );
        r.answer(
            "ip6tables -w 10 -C INPUT",
            Output {
                code: Some(1),
                ..Output::default()
            },
        );
        install(&r, &s).unwrap();
        let calls = r.commands();
        let v4: Vec<&String> = calls.iter().filter(|c| c.starts_with("iptables")).collect();
        assert_eq!(
            v4.len(),
            2,
            "an installed chain and jump are only checked: {calls:?}"
        );
        if Family::on_host().contains(&Family::V6) {
            assert!(
                calls
                    .iter()
                    .any(|c| c.starts_with("ip6tables -w 10 -N GALLEY-HOST-")),
                "{calls:?}"
            );
            assert!(
                calls
                    .iter()
                    .any(|c| c.ends_with("-j DROP") && c.starts_with("ip6tables")),
                "{calls:?}"
            );
            assert!(calls.iter().any(|c| c.starts_with("ip6tables -w 10 -I INPUT 1 -i podman7 -m comment --comment galley host side of galley-p-default -j GALLEY-HOST-")), "{calls:?}");
        }
    }

    #[test]
    fn jumps_are_found_by_their_comment() {
        let r = Recorder::default();
        let input = format!(
            "-P INPUT ACCEPT\n-A INPUT -i podman7 -m comment --comment \"galley host side of galley-p-default\" -j {}\n-A INPUT -j ACCEPT\n",
            chain("galley-p-default")
        );
        r.answer(
            "iptables -w 10 -S INPUT",
            Output {
                code: Some(0),
                stdout: input.into_bytes(),
                ..Output::default()
            },
        );
        assert_eq!(installed(&r).unwrap(), vec!["galley-p-default".to_owned()]);
        remove(&r, "galley-p-default").unwrap();
        assert!(r.commands().iter().any(|c| c.contains("-D INPUT -i podman7 -m comment --comment galley host side of galley-p-default -j GALLEY-HOST-")), "{:?}", r.commands());
    }
}

//! The host side of every sandbox network, closed: packets a sandbox sends to the host itself
//! (the bridge's gateway address, or any other address of the host) are dropped, except DNS to
//! aardvark-dns on the gateway and replies to connections the host opened (conntrack
//! ESTABLISHED,RELATED: published ports, the port forwarder, `podman exec`'s peers).
//!
//! Each network gets its own chain, named from the network's name alone ([`chain`]), in iptables
//! (IPv4) and ip6tables (the bridge's link-local address is the host too), with one jump to it
//! from INPUT for the bridge interface, tagged with a comment naming the network, ahead of any
//! rule that could accept the bridge's packets first. Installing is idempotent (a chain already
//! as expected is left alone) and repairs a jump another rule was put in front of; removing takes
//! the jump and the chain away. iptables is what netavark 1.4 drives; a DROP in any netfilter base
//! chain is final, so the rules hold whichever of iptables-legacy or iptables-nft is installed,
//! and alongside another tool's tables.
//!
//! A galley process removes only the rules of its own instance's networks, and only once it
//! removed them or podman says they are gone: never by comparing every installed chain with what
//! its own podman lists. A podman run with another `containers.conf` (another network backend or
//! configuration directory) lists none of the host's networks, and a sweep by that view opened
//! the host side of every running sandbox on the host.
//!
//! The firewall is read as one listing of the filter table per family ([`Table`]). iptables-nft
//! 1.8.9 answers a listing of one chain that does not exist with "chain ... is incompatible",
//! which reads like a reader racing a writer; the whole-table listing says plainly which chains
//! exist.

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

    /// The chain's rules as `iptables -S CHAIN` prints them, in order. DNS to the gateway is
    /// accepted, not returned to INPUT: a chain left by a network that had this bridge's name
    /// before, later in INPUT, would drop it.
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
                    "-A {c} -d {gw}/{prefix} -p {proto} -m {proto} --dport 53 -j ACCEPT"
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

/// The filter table of one family as `iptables -S` prints it: one consistent read of every chain.
#[derive(Debug, Clone, Default)]
pub struct Table {
    lines: Vec<String>,
}

impl Table {
    /// `iptables -S` (the filter table); a failing listing is an error, not an empty table.
    pub fn read(runner: &dyn Runner, family: Family) -> std::result::Result<Table, String> {
        let out = runner
            .run(&tool(family).arg("-S"))
            .map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "{} -S: {}",
                family.tool(),
                out.stderr_str().trim()
            ));
        }
        Ok(Table::parse(&out.stdout_str()))
    }

    pub fn parse(listing: &str) -> Table {
        Table {
            lines: listing
                .lines()
                .filter(|l| l.starts_with('-'))
                .map(str::to_owned)
                .collect(),
        }
    }

    pub fn has_chain(&self, chain: &str) -> bool {
        self.lines.iter().any(|l| l.strip_prefix("-N ") == Some(chain))
    }

    /// The chain as `iptables -S CHAIN` prints it: `-N CHAIN` and its rules, in order; empty
    /// when there is no such chain.
    pub fn chain(&self, chain: &str) -> Vec<String> {
        if !self.has_chain(chain) {
            return Vec::new();
        }
        let rule = format!("-A {chain} ");
        std::iter::once(format!("-N {chain}"))
            .chain(self.lines.iter().filter(|l| l.starts_with(&rule)).cloned())
            .collect()
    }

    /// INPUT's rules, without `-A INPUT`, split into arguments.
    fn input(&self) -> Vec<Vec<String>> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("-A INPUT "))
            .map(split_rule)
            .collect()
    }
}

/// Whether an INPUT rule may accept a packet arriving on `interface` before galley's jump sees
/// it: its verdict is ACCEPT, it does not name another input interface, and it does not accept
/// only replies (conntrack RELATED/ESTABLISHED, which galley's chain lets through too).
fn accepts_first(rule: &[String], interface: &Interface) -> bool {
    let at = |flag: &str| rule.iter().position(|w| w == flag);
    let verdict = at("-j").and_then(|i| rule.get(i + 1));
    if verdict.map(String::as_str) != Some("ACCEPT") {
        return false;
    }
    if let Some(i) = at("-i") {
        let negated = i > 0 && rule[i - 1] == "!";
        let name = rule.get(i + 1).map(String::as_str).unwrap_or_default();
        let matches = match name.strip_suffix('+') {
            Some(prefix) => interface.as_str().starts_with(prefix),
            None => name == interface.as_str(),
        };
        if matches == negated {
            return false;
        }
    }
    let replies_only = ["--ctstate", "--state"].iter().any(|flag| {
        at(flag).is_some_and(|i| {
            let negated = i > 0 && rule[i - 1] == "!";
            !negated
                && rule.get(i + 1).is_some_and(|states| {
                    states
                        .split(',')
                        .all(|s| s == "RELATED" || s == "ESTABLISHED")
                })
        })
    });
    !replies_only
}

/// Where galley's jump of `side` stands in INPUT: its index, and the first rule ahead of it that
/// may accept the bridge's packets.
fn jump_position(table: &Table, side: &HostSide) -> (Option<usize>, Option<String>) {
    let jump = side.jump();
    let input = table.input();
    let at = input.iter().position(|r| r[..] == jump[..]);
    let ahead = input[..at.unwrap_or(input.len())]
        .iter()
        .find(|r| accepts_first(r, &side.interface))
        .map(|r| r.join(" "));
    (at, ahead)
}

fn firewall_error(network: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Host {
        sandbox: "*".into(),
        message: format!("cannot close the host side of network {network}: {e}"),
        help: "galley installs iptables and ip6tables rules for every sandbox network, which needs root (rootful podman) and the iptables package".into(),
    }
}

/// Make the rules of `side` what [`HostSide::rules`] says, and the jump to them present ahead of
/// any rule that could accept the bridge's packets first: the chain is rewritten only when it
/// differs, and the jump moved only when another rule stands before it, so a second install
/// changes nothing.
pub fn install(runner: &dyn Runner, side: &HostSide) -> Result<()> {
    let c = chain(&side.network);
    let fail = |e: &dyn std::fmt::Display| firewall_error(&side.network, e);
    let check = |cmd: Cmd| runner.check(&cmd).map(drop).map_err(|e| fail(&e));
    for family in Family::on_host() {
        let want = side.rules(family);
        let table = Table::read(runner, family).map_err(|e| fail(&e))?;
        if !table.has_chain(&c) {
            check(tool(family).args(["-N", &c]))?;
        }
        if table.chain(&c) != want {
            check(tool(family).args(["-F", &c]))?;
            for rule in &want[1..] {
                check(tool(family).args(rule.split(' ')))?;
            }
        }
        let jump = side.jump();
        // Jumps to this chain for another bridge: the network's former bridge (it was removed
        // and made again), which another network may get next.
        let target = ["-j".to_owned(), c.clone()];
        for stale in table.input().iter().filter(|r| r.ends_with(&target) && r[..] != jump[..]) {
            check(tool(family).args(["-D", "INPUT"]).args(stale))?;
        }
        match jump_position(&table, side) {
            (Some(_), None) => {}
            (Some(_), Some(_)) => {
                // Another rule was put ahead and takes the bridge's packets already: the jump's
                // copies come out, and it goes first.
                let copies = table.input().iter().filter(|r| r[..] == jump[..]).count();
                for _ in 0..copies {
                    check(tool(family).args(["-D", "INPUT"]).args(&jump))?;
                }
                check(tool(family).args(["-I", "INPUT", "1"]).args(&jump))?;
            }
            (None, _) => check(tool(family).args(["-I", "INPUT", "1"]).args(&jump))?,
        }
    }
    Ok(())
}

/// Remove `network`'s jumps from INPUT and its chain, whatever interface the jumps name; a
/// network without rules is not an error. Only for a network of the caller's own instance that
/// podman no longer has (see the module's doc).
pub fn remove(runner: &dyn Runner, network: &str) -> Result<()> {
    let c = chain(network);
    let fail = |e: &dyn std::fmt::Display| firewall_error(network, e);
    for family in Family::on_host() {
        let table = Table::read(runner, family).map_err(|e| fail(&e))?;
        let target = ["-j".to_owned(), c.clone()];
        for rule in table.input().iter().filter(|r| r.ends_with(&target)) {
            runner
                .run(&tool(family).args(["-D", "INPUT"]).args(rule))
                .map_err(|e| fail(&e))?;
        }
        if table.has_chain(&c) {
            runner
                .run(&tool(family).args(["-F", &c]))
                .map_err(|e| fail(&e))?;
            let gone = runner
                .run(&tool(family).args(["-X", &c]))
                .map_err(|e| fail(&e))?;
            // Another process may have removed the same chain meanwhile: gone is gone.
            let still = || Table::read(runner, family).map(|t| t.has_chain(&c));
            if !gone.success() && still().map_err(|e| fail(&e))? {
                return Err(fail(&format!(
                    "{} -X {c}: {}",
                    family.tool(),
                    gone.stderr_str().trim()
                )));
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
    let table = Table::read(runner, Family::V4).map_err(|e| firewall_error("*", e))?;
    let mut names: Vec<String> = table
        .input()
        .iter()
        .filter(|r| r.last().is_some_and(|t| t.starts_with(CHAIN_PREFIX)))
        .filter_map(|r| {
            let i = r.iter().position(|w| w == "--comment")?;
            r.get(i + 1)?.strip_prefix(COMMENT_PREFIX).map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Close the host side of each of `networks` (podman's names), reading each one's bridge.
pub fn close(podman: &Podman<'_>, networks: &[String]) -> Result<()> {
    for network in networks {
        install(podman.runner, &HostSide::inspect(podman, network)?)?;
    }
    Ok(())
}

/// Remove the rules of those of `networks` (the caller's own instance's names) that are gone:
/// podman says it no longer has them (`network exists` exits 1) and no bridge of the name their
/// jump sends is up in the kernel. What a run that crashed between removing a network and its
/// rules left behind; a podman with another configuration, which lists none of the host's
/// networks, still finds their bridges.
pub fn remove_gone(podman: &Podman<'_>, networks: &[String]) -> Result<()> {
    let table = Table::read(podman.runner, Family::V4).map_err(|e| firewall_error("*", e))?;
    for n in networks {
        let jump_ends = ["-j".to_owned(), chain(n)];
        let bridges: Vec<String> = table
            .input()
            .into_iter()
            .filter(|r| r.ends_with(&jump_ends))
            .filter_map(|r| {
                let i = r.iter().position(|w| w == "-i")?;
                r.get(i + 1).cloned()
            })
            .collect();
        if !table.has_chain(&chain(n)) && bridges.is_empty() {
            continue;
        }
        if bridges
            .iter()
            .any(|b| std::path::Path::new("/sys/class/net").join(b).exists())
        {
            continue;
        }
        let out = podman
            .runner
            .run(&podman.cmd().args(["network", "exists", n]))?;
        if out.code == Some(1) {
            remove(podman.runner, n)?;
        }
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
    Snapshot::read(runner).status(side)
}

/// The filter table of each family, read once (`iptables -S`), to tell [`status`] of many
/// networks from one reading.
pub struct Snapshot(Vec<(Family, std::result::Result<Table, String>)>);

impl Snapshot {
    pub fn read(runner: &dyn Runner) -> Snapshot {
        Snapshot(Family::on_host().into_iter().map(|f| (f, Table::read(runner, f))).collect())
    }

    /// What [`status`] says of `side`, from this reading.
    pub fn status(&self, side: &HostSide) -> std::result::Result<(), String> {
        for (family, table) in &self.0 {
            let table = table.as_ref().map_err(Clone::clone)?;
            table_status(table, *family, side)?;
        }
        Ok(())
    }
}

fn table_status(table: &Table, family: Family, side: &HostSide) -> std::result::Result<(), String> {
    let c = chain(&side.network);
    if !table.has_chain(&c) {
        return Err(format!("{} has no chain {c}", family.tool()));
    }
    let have = table.chain(&c);
    if have != side.rules(family) {
        return Err(format!(
            "{} chain {c} holds {:?}, not {:?}",
            family.tool(),
            have,
            side.rules(family)
        ));
    }
    match jump_position(table, side) {
        (None, _) => Err(format!(
            "{} INPUT does not send {}'s packets to {c}",
            family.tool(),
            side.interface.as_str()
        )),
        (Some(_), Some(ahead)) => Err(format!(
            "{} INPUT accepts {}'s packets before sending them to {c}: `-A INPUT {ahead}`",
            family.tool(),
            side.interface.as_str()
        )),
        (Some(_), None) => Ok(()),
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
        let snapshot = |lines: Vec<String>| Snapshot(vec![(Family::V4, Ok(Table::parse(&lines.join("\n"))))]);
        assert_eq!(snapshot(table.clone()).status(&s), Ok(()));
        let no_jump = snapshot(table.iter().filter(|l| **l != jump).cloned().collect());
        assert!(no_jump.status(&s).unwrap_err().contains("INPUT does not send podman7's packets"));
        let changed = snapshot(table.iter().filter(|l| !l.contains("--dport 53")).cloned().collect());
        assert!(changed.status(&s).unwrap_err().contains(&format!("chain {c} holds")));
        let none = snapshot(vec!["-P INPUT ACCEPT".into()]);
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
                format!("-A {c} -d 10.89.3.1/32 -p udp -m udp --dport 53 -j ACCEPT"),
                format!("-A {c} -d 10.89.3.1/32 -p tcp -m tcp --dport 53 -j ACCEPT"),
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

    fn listing(s: &HostSide, input: &[String]) -> Output {
        listing_of(s, Family::V4, input)
    }

    fn listing_of(s: &HostSide, family: Family, input: &[String]) -> Output {
        let mut text = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-N OTHER\n".to_owned();
        for r in s.rules(family).iter().take(1).chain(input).chain(s.rules(family).iter().skip(1)) {
            text += r;
            text.push('\n');
        }
        text += "-A OTHER -j ACCEPT\n# Warning: iptables-legacy tables present, use iptables-legacy to see them\n";
        Output { code: Some(0), stdout: text.into_bytes(), ..Output::default() }
    }

    fn jump_line(s: &HostSide) -> String {
        format!("-A INPUT -i podman7 -m comment --comment \"galley host side of {}\" -j {}", s.network, chain(&s.network))
    }

    fn calls_of(r: &Recorder, tool: &str) -> Vec<String> {
        r.commands().into_iter().filter(|c| c.starts_with(&format!("{tool} "))).collect()
    }

    #[test]
    fn install_is_idempotent_and_rewrites_only_a_changed_chain() {
        let s = side();
        let r = Recorder::default();
        r.answer("iptables -w 10 -S", listing(&s, &[jump_line(&s)]));
        r.answer("ip6tables -w 10 -S", Output { code: Some(0), stdout: b"-P INPUT ACCEPT\n".to_vec(), ..Output::default() });
        install(&r, &s).unwrap();
        assert_eq!(calls_of(&r, "iptables"), vec!["iptables -w 10 -S".to_owned()], "an installed chain and jump are only read");
        if Family::on_host().contains(&Family::V6) {
            let v6 = calls_of(&r, "ip6tables");
            assert!(v6.iter().any(|c| c.starts_with("ip6tables -w 10 -N GALLEY-HOST-")), "{v6:?}");
            assert!(v6.iter().any(|c| c.ends_with("-j DROP")), "{v6:?}");
            assert!(v6.iter().any(|c| c.starts_with("ip6tables -w 10 -I INPUT 1 -i podman7 -m comment --comment galley host side of galley-p-default -j GALLEY-HOST-")), "{v6:?}");
        }
    }

    #[test]
    fn a_chain_that_does_not_exist_is_absent_not_incompatible() {
        // iptables-nft 1.8.9 answers `-S CHAIN` for a missing chain with "incompatible"; the
        // table's listing says which chains exist.
        let s = side();
        let r = Recorder::default();
        r.answer("iptables -w 10 -S", Output { code: Some(0), stdout: b"-P INPUT ACCEPT\n-N OTHER\n".to_vec(), ..Output::default() });
        let e = status(&r, &s).unwrap_err();
        assert_eq!(e, format!("iptables has no chain {}", chain(&s.network)));
        let r2 = Recorder::default();
        r2.answer("iptables -w 10 -S", Output { code: Some(4), stderr: b"iptables: Resource temporarily unavailable.".to_vec(), ..Output::default() });
        assert!(status(&r2, &s).unwrap_err().contains("Resource temporarily unavailable"), "a failed listing is an error, not an empty table");
        assert!(install(&r2, &s).is_err() && calls_of(&r2, "iptables").len() == 2, "nothing is changed on a failed listing: {:?}", r2.commands());
    }

    #[test]
    fn an_accept_put_ahead_of_the_jump_fails_status_and_install_moves_the_jump_first() {
        let s = side();
        let jump = jump_line(&s);
        let harmless = [
            "-A INPUT -i lo -j ACCEPT".to_owned(),
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_owned(),
            "-A INPUT ! -i podman7 -j ACCEPT".to_owned(),
            "-A INPUT -i docker+ -j ACCEPT".to_owned(),
            "-A INPUT -i podman7 -p tcp -j LOG".to_owned(),
        ];
        for ahead in &harmless {
            let r = Recorder::default();
            r.answer("iptables -w 10 -S", listing(&s, &[ahead.clone(), jump.clone()]));
            r.answer("ip6tables -w 10 -S", listing_of(&s, Family::V6, &[jump.clone()]));
            assert_eq!(status(&r, &s), Ok(()), "{ahead}");
        }
        for ahead in ["-A INPUT -j ACCEPT", "-A INPUT -i podman7 -j ACCEPT", "-A INPUT -i podman+ -p tcp -j ACCEPT", "-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT", "-A INPUT ! -i eth0 -j ACCEPT"] {
            let r = Recorder::default();
            r.answer("iptables -w 10 -S", listing(&s, &[ahead.to_owned(), jump.clone()]));
            r.answer("ip6tables -w 10 -S", listing_of(&s, Family::V6, &[jump.clone()]));
            let e = status(&r, &s).unwrap_err();
            assert!(e.contains("accepts podman7's packets before") && e.contains(ahead), "{e}");
            install(&r, &s).unwrap();
            let v4 = calls_of(&r, "iptables");
            let del = v4.iter().position(|c| c.starts_with("iptables -w 10 -D INPUT -i podman7")).unwrap_or_else(|| panic!("{v4:?}"));
            let ins = v4.iter().position(|c| c.starts_with("iptables -w 10 -I INPUT 1 -i podman7")).unwrap_or_else(|| panic!("{v4:?}"));
            assert!(del < ins, "{v4:?}");
        }
    }

    #[test]
    fn install_takes_out_the_chains_jump_for_a_former_bridge() {
        let s = side();
        let stale = jump_line(&s).replace("podman7", "podman2");
        let r = Recorder::default();
        r.answer("iptables -w 10 -S", listing(&s, &[jump_line(&s), stale]));
        r.answer("ip6tables -w 10 -S", listing_of(&s, Family::V6, &[jump_line(&s)]));
        install(&r, &s).unwrap();
        let v4 = calls_of(&r, "iptables");
        assert_eq!(v4.len(), 2, "{v4:?}");
        assert!(v4[1].starts_with("iptables -w 10 -D INPUT -i podman2 -m comment"), "{v4:?}");
    }

    #[test]
    fn jumps_are_found_by_their_comment() {
        let s = side();
        let r = Recorder::default();
        r.answer("iptables -w 10 -S", listing(&s, &[jump_line(&s), "-A INPUT -j ACCEPT".to_owned()]));
        r.answer("ip6tables -w 10 -S", listing(&s, &[]));
        assert_eq!(installed(&r).unwrap(), vec!["galley-p-default".to_owned()]);
        remove(&r, "galley-p-default").unwrap();
        let calls = r.commands();
        assert!(calls.iter().any(|c| c.contains("iptables -w 10 -D INPUT -i podman7 -m comment --comment galley host side of galley-p-default -j GALLEY-HOST-")), "{calls:?}");
        assert!(calls.iter().any(|c| c.starts_with("iptables -w 10 -X GALLEY-HOST-")), "{calls:?}");
    }
}

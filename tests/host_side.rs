//! The host side of every sandbox network is closed (issue 16): host listeners on 0.0.0.0 and on
//! a bridge's gateway address cannot be reached from 'isolated, 'none or 'egress sandboxes, while
//! an 'egress sandbox still reaches an "outside" the test builds itself (a network namespace on
//! a veth pair), and an 'isolated one does not. The rules are checked by `galley verify`,
//! repaired by `galley apply` and removed by `galley destroy`.

mod support;

use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::process::{Child, Command, Stdio};

use support::runner::{TestProject, free_port, podman_ok, run, text};
use support::runtime_available;

/// A host listener answering `HOST-<tag>` to every connection, for the life of the test.
fn host_listener(address: IpAddr, tag: &str) -> u16 {
    let l = TcpListener::bind((address, 0)).unwrap_or_else(|e| panic!("bind {address}: {e}"));
    let port = l.local_addr().unwrap().port();
    let reply = format!("HOST-{tag}\n");
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

/// The networks a container is on, each with its gateway.
fn gateways(container: &str) -> Vec<(String, IpAddr)> {
    let f = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Gateway}}\n{{end}}";
    podman_ok(&["inspect", "--format", f, container])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, g)| {
            (
                n.to_owned(),
                g.parse().unwrap_or_else(|_| panic!("gateway {g:?} of {n}")),
            )
        })
        .collect()
}

/// A network namespace with a veth pair to the host and a busybox httpd in it: "the outside",
/// built by the test, on 198.18.X.0/30 (a benchmarking range no real host answers on here).
struct Outside {
    ns: String,
    host_end: String,
    address: String,
    port: u16,
    server: Child,
    _root: tempfile::TempDir,
}

impl Outside {
    fn start(tag: &str) -> Outside {
        let id = std::process::id() % 200 + 20;
        let ns = format!("galley-t{}-{tag}", std::process::id());
        let (host_end, peer) = (format!("gt{id}{tag}h"), format!("gt{id}{tag}n"));
        let (host_addr, address) = (format!("198.18.{id}.1"), format!("198.18.{id}.2"));
        let ok = |args: &[&str]| {
            let out = run("ip", args);
            assert!(out.status.success(), "ip {args:?}: {}", text(&out));
        };
        ok(&["netns", "add", &ns]);
        ok(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", &peer, "netns", &ns,
        ]);
        ok(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_end]);
        ok(&["link", "set", &host_end, "up"]);
        ok(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/30"),
            "dev",
            &peer,
        ]);
        ok(&["-n", &ns, "link", "set", &peer, "up"]);
        ok(&["-n", &ns, "link", "set", "lo", "up"]);
        // Before any packet: the outside is on our veth, not behind a default route.
        let route = text(&run("ip", &["route", "get", &address]));
        assert!(route.contains(&format!("dev {host_end}")), "{route}");
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), "OUTSIDE\n").unwrap();
        let port = free_port();
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "/bin/busybox",
                "httpd",
                "-f",
                "-p",
                &format!("{address}:{port}"),
                "-h",
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        Outside {
            ns,
            host_end,
            address,
            port,
            server,
            _root: root,
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        run("ip", &["link", "del", &self.host_end]);
        run("ip", &["netns", "del", &self.ns]);
    }
}

fn config() -> &'static str {
    r#"  images.box = {},
  sandboxes.iso = { image = "box", user = "1000:1000", network = 'isolated, command = ["/bin/busybox", "sleep", "1000000"] },
  sandboxes.off = { image = "box", user = "1000:1000", network = 'none, command = ["/bin/busybox", "sleep", "1000000"] },
  sandboxes.out = { image = "box", user = "1000:1000", network = 'egress, command = ["/bin/busybox", "sleep", "1000000"] },"#
}

/// The chains and INPUT jumps galley installed for `network`, in iptables and ip6tables.
fn rules_of(network: &str) -> String {
    let chain = galley::runtime::firewall::chain(network);
    let mut all = String::new();
    for tool in ["iptables", "ip6tables"] {
        all += &text(&run(tool, &["-w", "10", "-S"]))
            .lines()
            .filter(|l| l.contains(&chain))
            .collect::<Vec<_>>()
            .join("\n");
    }
    all
}

#[test]
fn isolated_none_and_egress_sandboxes_cannot_reach_host_listeners_on_any_address_or_the_gateway() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("hostside").with_image("box");
    p.config(config());
    p.galley_code(&["lock"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    let outside = Outside::start("hs");
    let any = host_listener("0.0.0.0".parse().unwrap(), "ANY");
    let nets: Vec<(String, IpAddr)> = ["iso", "out"]
        .iter()
        .flat_map(|s| gateways(&p.container("default", s)))
        .collect();
    assert!(nets.len() >= 3, "{nets:?}");
    let mut on_gateway = Vec::new();
    for (_, gw) in &nets {
        on_gateway.push((*gw, host_listener(*gw, "GW")));
    }
    // nc prints what the far end sends; an empty answer is a connection that never happened.
    let reach = |sandbox: &str, addr: &str, port: u16| {
        let (_, out) = p.exec(
            "default",
            sandbox,
            &format!("/bin/busybox nc -w 2 {addr} {port} </dev/null"),
        );
        out.contains("HOST-") || out.contains("OUTSIDE")
    };
    // What the host's firewall and addresses were when an assertion failed.
    let state = || {
        let mut all = String::new();
        for args in [&["iptables", "-w", "10", "-S"][..], &["iptables", "-w", "10", "-t", "nat", "-S"], &["ip", "-br", "addr"]] {
            all += &format!("\n$ {}\n{}", args.join(" "), text(&run(args[0], &args[1..])));
        }
        all
    };
    let get = |sandbox: &str| {
        let request = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'";
        let (_, out) = p.exec(
            "default",
            sandbox,
            &format!(
                "{request} | /bin/busybox nc -w 3 {} {}",
                outside.address, outside.port
            ),
        );
        out.contains("OUTSIDE")
    };
    for sandbox in ["iso", "off", "out"] {
        for (gw, port) in &on_gateway {
            assert!(
                !reach(sandbox, &gw.to_string(), *port),
                "{sandbox} reaches the listener on gateway {gw} ({nets:?}): {}", state()
            );
            assert!(
                !reach(sandbox, &gw.to_string(), any),
                "{sandbox} reaches the 0.0.0.0 listener through gateway {gw} ({nets:?}): {}", state()
            );
        }
    }
    // The host's address on the outside's veth is the host too: closed to the egress sandbox.
    let veth_host = outside.address.replace(".2", ".1");
    assert!(
        !reach("out", &veth_host, any),
        "out reaches the 0.0.0.0 listener through the host's veth address: {}", state()
    );
    // The way out is what 'egress declares: the egress sandbox reaches the outside, the others do not.
    assert!(
        get("out"),
        "the 'egress sandbox cannot reach the outside the test built"
    );
    assert!(
        !get("iso") && !get("off"),
        "a sandbox without egress reaches the outside"
    );
    // DNS from aardvark on the gateway still answers.
    let (ok, out) = p.exec(
        "default",
        "iso",
        &format!("/bin/busybox nslookup {}", p.container("default", "out")),
    );
    assert!(
        ok,
        "name resolution through the gateway is closed too: {out}"
    );
    // verify sees the rules; a removed jump fails it; apply repairs; destroy removes them.
    p.galley_code(&["verify"], 0);
    let (net, _) = nets.iter().find(|(n, _)| !n.ends_with("-egress")).unwrap();
    let side = galley::runtime::firewall::HostSide::inspect(
        &galley::runtime::podman::Podman {
            runner: &galley::exec::System,
            runtime: None,
        },
        net,
    )
    .unwrap();
    let mut del = vec!["-w", "10", "-D", "INPUT"];
    let jump = side.jump();
    del.extend(jump.iter().map(String::as_str));
    assert!(run("iptables", &del).status.success());
    let report = p.galley_code(&["verify"], 1);
    assert!(
        report.contains("galley host side")
            && report.contains(&format!("the host side of network {net} is open")),
        "{report}"
    );
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    p.galley_code(&["verify"], 0);
    assert!(!rules_of(net).is_empty());
    // An ACCEPT for the bridge put ahead of galley's jump (a host firewall inserting its own rules
    // first) opens the host side: verify names the rule, apply puts the jump first again.
    let (gw, port) = on_gateway.iter().find(|(g, _)| nets.iter().any(|(n, ng)| n == net && ng == g)).unwrap();
    {
        let _ahead = AcceptAhead::insert(side.interface.as_str());
        assert!(reach("iso", &gw.to_string(), *port), "an ACCEPT ahead of the jump does not open the host side: the check below proves nothing");
        let report = p.galley_code(&["verify"], 1);
        assert!(report.contains(&format!("accepts {}'s packets before", side.interface.as_str())), "{report}");
        p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
        p.galley_code(&["verify"], 0);
        assert!(!reach("iso", &gw.to_string(), *port), "iso reaches the gateway listener after apply moved the jump first: {}", state());
    }
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
    for (n, _) in &nets {
        assert_eq!(rules_of(n), "", "rules of {n} outlive destroy");
    }
}

/// `-A INPUT -i BRIDGE -j ACCEPT` at the head of INPUT, for a bridge of the test's own network;
/// taken out again when dropped.
struct AcceptAhead(String);

impl AcceptAhead {
    fn insert(bridge: &str) -> AcceptAhead {
        let out = run("iptables", &["-w", "10", "-I", "INPUT", "1", "-i", bridge, "-j", "ACCEPT"]);
        assert!(out.status.success(), "{}", text(&out));
        AcceptAhead(bridge.to_owned())
    }
}

impl Drop for AcceptAhead {
    fn drop(&mut self) {
        run("iptables", &["-w", "10", "-D", "INPUT", "-i", &self.0, "-j", "ACCEPT"]);
    }
}

/// A galley whose podman runs with another containers.conf (here the CNI network backend) lists
/// none of the host's netavark networks. Its `apply` and `destroy`, of an unrelated project, once
/// swept every galley chain it could not match to a network of its own, opening the host side of
/// every running sandbox on the host; they now leave other instances' rules alone.
#[test]
fn a_galley_whose_podman_sees_other_networks_cannot_open_the_host_side_of_running_sandboxes() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("hsview").with_image("box");
    p.config(
        r#"  images.box = {},
  sandboxes.iso = { image = "box", user = "1000:1000", network = 'isolated, command = ["/bin/busybox", "sleep", "1000000"] },"#,
    );
    p.galley_code(&["lock"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    let (net, gw) = gateways(&p.container("default", "iso")).remove(0);
    let port = host_listener(gw, "GW");
    let before = rules_of(&net);
    assert!(!before.is_empty());

    let other = TestProject::new("hsview-cni").with_image("box");
    other.config(
        r#"  images.box = {},
  sandboxes.svc = { image = "box", user = "1000:1000", network = 'isolated, command = ["/bin/busybox", "sleep", "1000000"] },"#,
    );
    let conf = other.dir.path().join("cni-containers.conf");
    std::fs::write(&conf, "[network]\nnetwork_backend = \"cni\"\n").unwrap();
    for args in [&["apply", "--auto-approve"][..], &["destroy", "--auto-approve"]] {
        let out = other.galley_cmd(args).env("CONTAINERS_CONF", &conf).output().unwrap();
        assert!(text(&out).contains("cni") || out.status.success(), "{args:?}: {}", text(&out));
        assert_eq!(rules_of(&net), before, "galley {args:?} under a CNI containers.conf changed the rules of {net}");
    }
    p.galley_code(&["verify"], 0);
    let (_, out) = p.exec("default", "iso", &format!("/bin/busybox nc -w 2 {gw} {port} </dev/null"));
    assert!(!out.contains("HOST-"), "iso reaches the gateway listener: {out}");
    p.galley_code(&["destroy", "--auto-approve"], 0);
    assert_eq!(rules_of(&net), "", "rules of {net} outlive destroy");
}

//! Injective names on real podman: instances `a` and `a-egress` of one project live side by side
//! (their networks once had one name), and an instance an older galley created under the former
//! `-` names is migrated by its labels, its volume's files kept.

mod support;

use support::runner::{podman_ok, text, TestProject};
use support::runtime_available;

fn egress_config() -> &'static str {
    r#"  images.box = {},
  sandboxes.web = {
    image = "box",
    user = "1000:1000",
    network = 'egress,
    command = ["/bin/busybox", "sleep", "3600"],
    volumes = [{ name = "work", path = "/work" }],
  },"#
}

#[test]
fn instances_a_and_a_egress_do_not_share_a_network_name() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("names").with_image("box");
    p.config(egress_config());
    p.galley_code(&["lock"], 0);
    for instance in ["a", "a-egress"] {
        p.galley_code(&["apply", "--auto-approve", "--locked", "--instance", instance], 0);
    }
    let mut networks = p.leftovers("network");
    networks.sort();
    let n = &p.name;
    let want = [format!("galley_{n}_a"), format!("galley_{n}_a-egress"), format!("galley_{n}_a-egress_egress"), format!("galley_{n}_a_egress")];
    assert_eq!(networks, want, "each instance has its two networks");
    let on = |instance: &str| {
        let c = p.container(instance, "web");
        let nets = podman_ok(&["inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", &c]);
        let mut nets: Vec<String> = nets.split_whitespace().map(str::to_owned).collect();
        nets.sort();
        nets
    };
    assert_eq!(on("a"), [format!("galley_{n}_a"), format!("galley_{n}_a_egress")]);
    assert_eq!(on("a-egress"), [format!("galley_{n}_a-egress"), format!("galley_{n}_a-egress_egress")]);
    // Removing one instance leaves the other whole.
    p.galley_code(&["destroy", "--auto-approve", "--volumes", "--instance", "a-egress"], 0);
    let state = podman_ok(&["inspect", "--format", "{{.State.Status}}", &p.container("a", "web")]);
    assert_eq!(state.trim(), "running");
    let mut left = p.leftovers("network");
    left.sort();
    assert_eq!(left, [format!("galley_{n}_a"), format!("galley_{n}_a_egress")]);
    p.galley_code(&["verify", "--instance", "a"], 0);
}

#[test]
fn an_instance_under_the_former_names_is_migrated_with_its_volume_files() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("migrate").with_image("box");
    p.config(egress_config().replace("'egress", "'isolated").as_str());
    // What an older galley left: a container, network and volume under `-` names, with labels.
    p.galley_code(&["apply", "--auto-approve"], 0);
    let image = podman_ok(&["inspect", "--format", "{{.ImageName}}", &p.container("default", "web")]).trim().to_owned();
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
    let n = &p.name;
    let labels = |extra: &[String]| {
        let mut l = vec!["--label".to_owned(), format!("io.galley.project={n}"), "--label".into(), "io.galley.instance=default".into()];
        for e in extra {
            l.extend(["--label".to_owned(), e.clone()]);
        }
        l
    };
    let (old_net, old_vol, old_ctr) = (format!("galley-{n}-default"), format!("galley-{n}-default-work"), format!("galley-{n}-default-web"));
    let args = |head: &[&str], extra: Vec<String>, tail: &[&str]| -> Vec<String> {
        head.iter().map(|s| s.to_string()).chain(extra).chain(tail.iter().map(|s| s.to_string())).collect()
    };
    let run = |a: Vec<String>| podman_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    run(args(&["network", "create", "--internal"], labels(&[format!("io.galley.network={old_net}")]), &[&old_net]));
    run(args(&["volume", "create"], labels(&["io.galley.volume=work".into()]), &[&old_vol]));
    let volume = format!("{old_vol}:/work");
    let common = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--entrypoint", r#"["/bin/busybox"]"#];
    let mut write = vec!["run", "--rm", "--user", "1000:1000", "-v", &volume];
    write.extend(common);
    write.extend([image.as_str(), "sh", "-c", "echo kept > /work/file"]);
    podman_ok(&write);
    let mut old = vec!["run", "--detach", "--name", &old_ctr, "--network", &old_net, "-v", &volume];
    old.extend(common);
    old.extend([image.as_str(), "sleep", "3600"]);
    run(args(&old[..2], labels(&["io.galley.sandbox=web".into(), "io.galley.manifest=sha256:old".into()]), &old[2..]));

    let plan = p.galley_code(&["plan"], 0);
    assert!(plan.contains(&format!("renamed from {old_ctr}")), "{plan}");
    assert!(plan.contains(&format!("~ volume    {old_vol} -> galley_{n}_default_work")), "{plan}");
    let out = p.galley_code(&["apply", "--auto-approve"], 0);
    assert!(out.contains(&format!("moving the files of volume {old_vol}")), "{}", out);
    let new = p.container("default", "web");
    let (ok, file) = p.exec("default", "web", "cat /work/file");
    assert!(ok && file.trim() == "kept", "the volume's files moved with it: {file}");
    let left = [p.leftovers("ps"), p.leftovers("network"), p.leftovers("volume")].concat();
    assert_eq!(left, [new, format!("galley_{n}_default"), format!("galley_{n}_default_work")], "only the new names are left");
    let again = p.galley(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "a second plan has nothing to do: {}", text(&again));
}

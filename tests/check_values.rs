//! `galley check` on values podman would drop, widen or refuse, and on files the build would read:
//! the cases the fixtures cannot hold (bytes that are not UTF-8, symbolic links, files on disk)
//! and the promises that hold across commands (a finding stops `build` before it starts).

mod support;

use std::os::unix::fs::symlink;

use serde_json::Value;
use support::{Sandbox, stderr, stdout};

fn findings(project: &Sandbox) -> (Option<i32>, Vec<Value>) {
    let out = project.galley(&["check", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)));
    (out.status.code(), report["diagnostics"].as_array().unwrap().clone())
}

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics.iter().map(|d| d["code"].as_str().unwrap()).collect()
}

const WITH_FILES: &str = r#"{
  name = "files",
  images.app = { files = [{ src = "SRC", dst = "/srv/app" }] },
  sandboxes.app = { image = "app" },
}
"#;

fn copying(src: &str) -> Sandbox {
    Sandbox::with_config(&WITH_FILES.replace("SRC", src))
}

#[test]
fn a_byte_that_is_not_utf8_is_a_located_error_without_a_debug_dump() {
    let project = Sandbox::new();
    std::fs::write(project.path().join("galley.ncl"), b"{\n  name = \"latin\", # caf\xe9\n}\n").unwrap();
    let (code, diagnostics) = findings(&project);
    assert_eq!(code, Some(1));
    let d = &diagnostics[0];
    assert_eq!(d["code"], "G015");
    assert_eq!((d["start"]["line"].as_u64(), d["start"]["column"].as_u64()), (Some(2), Some(24)), "{d}");
    assert_eq!(d["message"], "byte 0xe9 at line 2, column 24 is not UTF-8");
    let text = stderr(&project.galley(&["check"]));
    assert!(text.contains("galley.ncl:2:24"), "{text}");
    assert!(!text.contains("Os {") && !text.contains("kind:"), "a Debug dump: {text}");
}

#[test]
fn a_byte_order_mark_is_accepted_and_positions_do_not_move() {
    let config = "{ name = \"bom\", images.app = {}, sandboxes.app = { image = \"app\", user = \"root\" } }\n";
    let plain = Sandbox::with_config(config);
    let marked = Sandbox::with_config(&format!("\u{feff}{config}"));
    let (plain_code, plain_found) = findings(&plain);
    let (marked_code, marked_found) = findings(&marked);
    assert_eq!((plain_code, marked_code), (Some(0), Some(0)));
    assert_eq!(codes(&marked_found), vec!["G106"]);
    assert_eq!(marked_found[0]["start"], plain_found[0]["start"]);
}

const IMPORTING: &str = "{ name = \"imp\", images.app = {}, sandboxes = import \"lib/sandboxes.ncl\" }\n";

#[test]
fn a_byte_that_is_not_utf8_in_an_imported_file_is_located_in_that_file() {
    let project = Sandbox::with_config(IMPORTING);
    std::fs::create_dir_all(project.path().join("lib")).unwrap();
    std::fs::write(project.path().join("lib/sandboxes.ncl"), b"{\n  app = { image = \"app\" }, # caf\xe9\n}\n").unwrap();
    let (code, diagnostics) = findings(&project);
    assert_eq!(code, Some(1));
    let d = &diagnostics[0];
    assert_eq!((d["code"].as_str(), d["file"].as_str()), (Some("G015"), Some("lib/sandboxes.ncl")), "{d}");
    assert_eq!((d["start"]["line"].as_u64(), d["start"]["column"].as_u64()), (Some(2), Some(33)), "{d}");
    assert_eq!(d["message"], "byte 0xe9 at line 2, column 33 is not UTF-8");
    let text = stderr(&project.galley(&["check"]));
    assert!(text.contains("lib/sandboxes.ncl:2:33"), "{text}");
    assert!(text.contains("lib/sandboxes.ncl is imported at galley.ncl:1:"), "the import site is shown: {text}");
    assert!(!text.contains("could not find"), "the file is there: {text}");
}

#[test]
fn a_byte_order_mark_in_an_imported_file_is_named_with_its_fix() {
    let project = Sandbox::with_config(IMPORTING);
    project.write("lib/sandboxes.ncl", "\u{feff}{\n  app = { image = \"app\" },\n}\n");
    let (code, diagnostics) = findings(&project);
    assert_eq!(code, Some(1));
    let d = &diagnostics[0];
    assert_eq!((d["code"].as_str(), d["file"].as_str()), (Some("G001"), Some("lib/sandboxes.ncl")), "{d}");
    assert_eq!((d["start"]["line"].as_u64(), d["start"]["column"].as_u64()), (Some(1), Some(1)), "{d}");
    assert!(d["message"].as_str().unwrap().contains("starts with a byte-order mark"), "{d}");
    assert!(d["help"].as_str().unwrap().contains("save lib/sandboxes.ncl as UTF-8 without a byte-order mark"), "{d}");
    // Without the mark the same file checks clean.
    project.write("lib/sandboxes.ncl", "{\n  app = { image = \"app\", user = \"1000\" },\n}\n");
    assert_eq!(findings(&project).0, Some(0));
}

#[test]
fn text_and_json_count_columns_in_characters_after_non_ascii_text() {
    let config = "{ name = \"wide\", images.app = { labels.l = \"h\u{e9}llo \u{1f600}\" }, sandboxes.app = { image = \"app\", user = \"root\" } }\n";
    let project = Sandbox::with_config(config);
    let (_, found) = findings(&project);
    let column = found[0]["start"]["column"].as_u64().unwrap();
    let chars = config[..config.find("\"root\"").unwrap()].chars().count() as u64 + 1;
    assert_eq!(column, chars);
    let text = stderr(&project.galley(&["check"]));
    assert!(text.contains(&format!("galley.ncl:1:{chars}]")), "{text}");
}

#[test]
fn a_missing_files_source_is_reported_at_its_field_before_any_build() {
    let project = copying("app/main.py");
    let (code, found) = findings(&project);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&found), vec!["G120"]);
    assert_eq!(found[0]["message"], "`app/main.py` does not exist in the project directory");
    assert_eq!(found[0]["start"]["line"], 3);
    // build stops at the same finding, before it starts any work.
    let build = project.galley(&["build"]);
    assert_eq!(build.status.code(), Some(1));
    assert!(stderr(&build).contains("G120"), "{}", stderr(&build));
    project.write("app/main.py", "print('hi')\n");
    assert_eq!(findings(&project), (Some(0), vec![]));
    // Other spellings of paths inside the project resolve there too.
    for src in ["./app//main.py", "app/", "."] {
        let other = copying(src);
        other.write("app/main.py", "print('hi')\n");
        assert_eq!(findings(&other), (Some(0), vec![]), "{src}");
    }
}

#[test]
fn a_symlinked_directory_leading_out_of_the_project_is_refused_host_file_exfiltration() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("id_rsa"), "host secret").unwrap();
    let project = copying("keys/id_rsa");
    symlink(outside.path(), project.path().join("keys")).unwrap();
    let (code, found) = findings(&project);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&found), vec!["G121"]);
    assert!(found[0]["message"].as_str().unwrap().contains("leads out of the project"), "{}", found[0]);
}

/// The attack: a pull request's galley.ncl that imports a host file (`/etc/shadow`, the
/// server's own secrets), by absolute path, by `..`, or through a link planted in the project:
/// as a value (`as 'Text`) it lands in a sandbox's environment, and as Nickel its lines were
/// shown in the syntax error's source excerpt.
#[test]
fn a_config_importing_a_host_file_is_refused_without_showing_it_host_file_exfiltration() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, "root:host-secret-hash:20000:0:99999:7:::\n").unwrap();
    let latin = outside.path().join("latin1.txt");
    std::fs::write(&latin, b"\xe9t\xe9 host-secret-hash\n").unwrap();
    let as_value = |path: &str| {
        format!("{{ name = \"imp\", images.app = {{}}, sandboxes.app = {{ image = \"app\", env.LEAK = import \"{path}\" as 'Text }} }}\n")
    };
    let as_nickel = |path: &str| format!("let x = import \"{path}\" in {{ name = \"imp\" }}\n");
    // Both folders are in the same temporary directory.
    let up = format!("../{}/shadow", outside.path().file_name().unwrap().to_str().unwrap());
    let cases = [
        ("absolute, as a value", as_value(&secret.display().to_string()), false),
        ("absolute, as Nickel", as_nickel(&secret.display().to_string()), false),
        ("through `..`", as_value(&format!("../../../../../../../../../..{}", secret.display())), false),
        ("through a link in the project", as_nickel("linked.ncl"), true),
        ("up from the project", as_nickel(&up), false),
        // Nickel cannot read a file that is not UTF-8, and galley read it to show the bad byte.
        ("not UTF-8", as_value(&latin.display().to_string()), false),
    ];
    for (what, config, link) in cases {
        let project = Sandbox::with_config(&config);
        if link {
            symlink(&secret, project.path().join("linked.ncl")).unwrap();
        }
        for args in [&["check"][..], &["check", "--format", "json"], &["show"], &["lock"]] {
            let out = project.galley(args);
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(matches!(out.status.code(), Some(1 | 2)), "{what}, {args:?}: {all}");
            assert!(all.contains("G016") && all.contains("outside the project"), "{what}, {args:?}: {all}");
            assert!(!all.contains("host-secret-hash"), "{what}, {args:?} showed the host file: {all}");
        }
    }

    // Files of the project, galley's library and, in a git work tree, the repository's shared
    // files are imported as before.
    let repo = Sandbox::new();
    repo.write("shared/common.ncl", "{ name = \"imp\" }\n");
    repo.write("app/parts/extra.ncl", "{ images.app = {} }\n");
    repo.write(
        "app/galley.ncl",
        "let galley = import \"galley/std.ncl\" in\n(import \"../shared/common.ncl\") & (import \"parts/extra.ncl\") & { sandboxes.app = { image = \"app\", seccomp = galley.seccomp.default } }\n",
    );
    let app = repo.path().join("app");
    let out = support::galley_in(&app, repo.home.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1), "no git work tree: the parent is outside the project: {}", stderr(&out));
    assert!(stderr(&out).contains("G016"), "{}", stderr(&out));
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    let out = support::galley_in(&app, repo.home.path(), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

const WITH_CONTAINERFILE: &str = r#"{
  name = "cf",
  images.app = { containerfile = { path = "Containerfile", context = "CONTEXT" } },
  sandboxes.app = { image = "app" },
}
"#;

/// The attack: a pull request whose Containerfile is a link to a host file, whose lines a
/// parse error showed in `check`'s output (`/etc/shadow` was printed line by line); one whose
/// context is a link to a host directory, all of which the build would copy into the image;
/// and a Containerfile that is a FIFO, which hung `check` and `lock` waiting for a writer.
#[test]
fn a_containerfile_or_context_linked_out_of_the_project_is_refused_host_file_exfiltration() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), "root:host-secret-hash:20000:0:99999:7:::\n").unwrap();
    let project = Sandbox::with_config(&WITH_CONTAINERFILE.replace("CONTEXT", "."));
    symlink(outside.path().join("shadow"), project.path().join("Containerfile")).unwrap();
    let (code, found) = findings(&project);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&found), vec!["G041"], "{found:?}");
    assert!(found[0]["message"].as_str().unwrap().contains("the Containerfile leads out of the project through a symbolic link"), "{}", found[0]);
    for args in [&["check"][..], &["lock"], &["build"]] {
        let out = project.galley(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("leads out of the project"), "{args:?}: {all}");
        assert!(!all.contains("host-secret-hash"), "{args:?} printed the host file: {all}");
    }

    // A link that stays inside the project is followed.
    let inside = Sandbox::with_config(&WITH_CONTAINERFILE.replace("CONTEXT", "."));
    inside.write("docker/Containerfile", "FROM scratch\nUSER 1000:1000\n");
    symlink("docker/Containerfile", inside.path().join("Containerfile")).unwrap();
    assert_eq!(findings(&inside), (Some(0), vec![]));

    // The context a link to a host directory.
    let context = Sandbox::with_config(&WITH_CONTAINERFILE.replace("CONTEXT", "ctx"));
    context.write("Containerfile", "FROM scratch\nUSER 1000:1000\nCOPY . /\n");
    symlink(outside.path(), context.path().join("ctx")).unwrap();
    let (code, found) = findings(&context);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&found), vec!["G041"], "{found:?}");
    assert!(found[0]["message"].as_str().unwrap().starts_with("the build context `ctx` leads out of the project"), "{}", found[0]);
    let out = context.galley(&["lock"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A FIFO: refused at once, never waited on.
    let fifo = Sandbox::with_config(&WITH_CONTAINERFILE.replace("CONTEXT", "."));
    assert!(std::process::Command::new("mkfifo").arg(fifo.path().join("Containerfile")).status().unwrap().success());
    let (code, found) = findings(&fifo);
    assert_eq!(code, Some(1));
    assert!(found[0]["message"].as_str().unwrap().contains("the Containerfile is not a regular file"), "{}", found[0]);
}

#[test]
fn a_source_that_is_a_link_is_reported_as_copied_as_a_link() {
    let project = copying("current");
    project.write("v2/app.py", "print('v2')\n");
    symlink("v2/app.py", project.path().join("current")).unwrap();
    let (code, found) = findings(&project);
    assert_eq!(code, Some(0), "a warning");
    assert_eq!(codes(&found), vec!["G122"]);
    assert!(found[0]["message"].as_str().unwrap().contains("copied into the image as the link"), "{}", found[0]);

    // A dangling link inside a copied directory, pointing at a host path.
    let dir = copying("site");
    dir.write("site/index.html", "<p>hi</p>\n");
    symlink("/etc/shadow-galley-test-nothing", dir.path().join("site/leak")).unwrap();
    let (code, found) = findings(&dir);
    assert_eq!(code, Some(0));
    assert_eq!(codes(&found), vec!["G122"]);
    assert!(found[0]["message"].as_str().unwrap().contains("`leak` in it is a link to nothing"), "{}", found[0]);
    let denied = dir.galley(&["check", "--deny", "warnings"]);
    assert_eq!(denied.status.code(), Some(1));
}

#[test]
fn a_udp_port_on_a_sandbox_without_egress_stops_build_and_lock_not_only_apply() {
    // A TCP port there is carried by galley's forwarder and passes.
    let tcp = Sandbox::with_config(
        "{ name = \"p\", images.app = {}, sandboxes.app = { image = \"app\", ports = [{ container = 80, host = 18080 }] } }\n",
    );
    let out = tcp.galley(&["check"]);
    assert!(!stderr(&out).contains("G116"), "{}", stderr(&out));
    let project = Sandbox::with_config(
        "{ name = \"p\", images.app = {}, sandboxes.app = { image = \"app\", ports = [{ container = 53, host = 18053, protocol = 'udp }] } }\n",
    );
    // lock answers 1 for "stale", so a config error is 2 there.
    for (args, code) in [(&["build"][..], 1), (&["lock"], 2), (&["show"], 1)] {
        let out = project.galley(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(stderr(&out).contains("G116"), "{args:?}: {}", stderr(&out));
    }
    assert!(!project.path().join("galley.lock").exists(), "a lock recording a port that is never published");
}

#[test]
fn host_port_clashes_are_computed_on_address_ranges_across_sandboxes() {
    let config = |a: &str, b: &str, proto: &str| {
        format!(
            "{{ name = \"p\", images.app = {{}},
  sandboxes.a = {{ image = \"app\", network = 'egress, ports = [{{ container = 80, host = 9000, address = \"{a}\" }}] }},
  sandboxes.b = {{ image = \"app\", network = 'egress, ports = [{{ container = 80, host = 9000, address = \"{b}\", protocol = '{proto} }}] }} }}\n"
        )
    };
    let clash = |a: &str, b: &str, proto: &str| {
        let (_, found) = findings(&Sandbox::with_config(&config(a, b, proto)));
        codes(&found).contains(&"G110")
    };
    assert!(clash("0.0.0.0", "127.0.0.1", "tcp"));
    assert!(clash("127.0.0.1", "0.0.0.0", "tcp"));
    assert!(clash("::", "127.0.0.1", "tcp"), ":: is dual-stack");
    assert!(clash("::", "::1", "tcp"));
    assert!(clash("::1", "0:0:0:0:0:0:0:1", "tcp"), "one address in two spellings");
    assert!(!clash("0.0.0.0", "::1", "tcp"), "0.0.0.0 is IPv4 only");
    assert!(!clash("127.0.0.1", "127.0.0.2", "tcp"));
    assert!(!clash("0.0.0.0", "127.0.0.1", "udp"), "another protocol");
}

#[test]
fn mount_paths_are_compared_normalised_so_spellings_do_not_slip_past() {
    let with = |mounts: &str| {
        let config = format!("{{ name = \"m\", images.app = {{}}, sandboxes.app = {{ image = \"app\", {mounts} }} }}\n");
        let (code, found) = findings(&Sandbox::with_config(&config));
        (code, codes(&found).into_iter().map(str::to_owned).collect::<Vec<_>>())
    };
    assert_eq!(with("tmpfs = [{ path = \"/run/secrets/\" }]"), (Some(1), vec!["G115".to_owned()]));
    assert_eq!(with("tmpfs = [{ path = \"//run///secrets/x\" }]"), (Some(1), vec!["G115".to_owned()]));
    assert_eq!(with("volumes = [{ name = \"a\", path = \"/data\" }, { name = \"b\", path = \"/./data/\" }]"), (Some(1), vec!["G115".to_owned()]));
    assert_eq!(with("volumes = [{ name = \"a\", path = \"//\" }]"), (Some(1), vec!["G117".to_owned()]));
    assert_eq!(with("volumes = [{ name = \"a\", path = \"/proc/sys\" }]"), (Some(1), vec!["G117".to_owned()]));
    assert_eq!(with("volumes = [{ name = \"a\", path = \"/srv\" }, { name = \"b\", path = \"/srv/cache\" }]"), (Some(0), vec!["G118".to_owned()]));
    assert_eq!(with("volumes = [{ name = \"a\", path = \"/srv\" }], tmpfs = [{ path = \"/srv//tmp/\" }]"), (Some(0), vec!["G118".to_owned()]));
    // A volume inside a tmpfs, and siblings, are fine.
    assert_eq!(with("volumes = [{ name = \"a\", path = \"/tmp/data\" }, { name = \"b\", path = \"/srvx\" }, { name = \"c\", path = \"/srv\" }]"), (Some(0), vec![]));
}

#[test]
fn the_library_profiles_written_as_records_are_judged_confining() {
    for profile in ["default", "strict"] {
        let config = format!(
            "let galley = import \"galley/std.ncl\" in {{ name = \"s\", images.app = {{}}, sandboxes.app = {{ image = \"app\", seccomp = galley.seccomp.{profile} }} }}\n"
        );
        assert_eq!(findings(&Sandbox::with_config(&config)), (Some(0), vec![]), "{profile}");
    }
}

#[test]
fn a_rule_allowing_a_dangerous_call_counts_only_with_the_capability_it_names() {
    let config = |caps: &str| {
        format!(
            "{{ name = \"s\", images.app = {{}}, sandboxes.app = {{ image = \"app\", capabilities = [{caps}], seccomp = {{ defaultAction = \"SCMP_ACT_ERRNO\", syscalls = [{{ names = [\"bpf\"], action = \"SCMP_ACT_ALLOW\", includes = {{ caps = [\"CAP_SYS_ADMIN\"] }} }}] }} }} }}\n"
        )
    };
    let (_, without) = findings(&Sandbox::with_config(&config("")));
    assert_eq!(codes(&without), Vec::<&str>::new());
    let (_, with) = findings(&Sandbox::with_config(&config("\"SYS_ADMIN\"")));
    assert_eq!(codes(&with), vec!["G104", "G119"]);
}

//! The audit log through the real binary: `galley audit verify` on a long untouched chain and on
//! each kind of tampering, two processes appending at once, owner-only files, secret values kept
//! out, and commands refused when their entry cannot be written.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use galley::audit_log::{Actor, Entry, Event, GENESIS, Log, Outcome, hash};
use support::runner::{TestProject, podman_ok};
use support::runtime_available;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const CANARY: &str = "canary-audit-7f3e1d-never-logged";

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let (home, project) = (dir.path().join("home"), dir.path().join("proj"));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(project.join("galley.ncl"), "{ name = \"audited\" }\n").unwrap();
        Home { _dir: dir, home, project }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in(&self.project, args)
    }

    /// `galley -C dir args...` on this home.
    fn cmd_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_galley"));
        cmd.arg("-C").arg(dir).args(args).env("GALLEY_HOME", &self.home).env("NO_COLOR", "1");
        cmd.env_remove("GALLEY_MASTER_KEY").env_remove("GALLEY_TEST_NOW");
        cmd
    }

    fn galley(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn log(&self) -> PathBuf {
        self.home.join("audit.log")
    }

    /// The log as text and as entries.
    fn entries(&self) -> Vec<Entry> {
        Log::open(&self.home).read().unwrap()
    }

    /// A chain of `n` entries written the way galley writes them, with its head.
    fn write_chain(&self, n: u64) {
        let mut text = String::new();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=n {
            let line = serde_json::json!({
                "time": "2026-01-01T00:00:00Z", "seq": seq, "actor": "token:abc", "action": "admin.preview.list",
                "target": "*", "source": "127.0.0.1", "outcome": "ok", "reason": null, "prev": prev,
            })
            .to_string();
            prev = hash(&line);
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(self.log(), text).unwrap();
        std::fs::write(self.home.join("audit.head"), serde_json::json!({ "seq": n, "hash": prev }).to_string()).unwrap();
    }

    fn edit(&self, f: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(self.log()).unwrap().lines().map(str::to_owned).collect();
        f(&mut lines);
        std::fs::write(self.log(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn verify_passes_an_untouched_chain_of_ten_thousand_entries() {
    let h = Home::new();
    h.write_chain(10_000);
    let out = h.galley(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("audit log intact: 10000 entries, head at entry 10000"), "{}", text(&out));
    let json = h.galley(&["--format", "json", "audit", "verify"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((report["entries"].as_u64(), report["broken"].is_null()), (Some(10_000), true));
}

#[test]
fn verify_names_each_kind_of_tampering_and_exits_1() {
    type Edit = fn(&mut Vec<String>);
    let cases: [(&str, Edit, &str); 5] = [
        ("edited", |l| l[3] = l[3].replace("admin.preview.list", "admin.preview.lisT"), "line 5 names a hash the line before it does not have: line 4 was changed"),
        ("deleted", |l| drop(l.remove(6)), "entry 7 is missing before line 7: it was deleted"),
        ("reordered", |l| l.swap(2, 3), "line 3 holds entry 4 where entry 3 belongs: lines were moved"),
        ("truncated", |l| l.truncate(8), "the log ends at entry 8 but its head records entry 10: the tail was cut off"),
        ("appended", |l| {
            let forged = serde_json::json!({
                "time": "2026-01-01T00:00:01Z", "seq": 11, "actor": "cli:mallory", "action": "apply", "target": "x",
                "source": null, "outcome": "ok", "reason": null, "prev": hash(&l[9]),
            });
            l.push(forged.to_string());
        }, "line 11 comes after entry 10, the last the head records: it was added outside galley"),
    ];
    for (kind, edit, message) in cases {
        let h = Home::new();
        h.write_chain(10);
        h.edit(edit);
        let out = h.galley(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", text(&out));
        assert!(text(&out).contains(&format!("is broken ({kind}): {message}")), "{kind}: {}", text(&out));
    }
}

#[test]
fn two_processes_appending_at_once_leave_one_valid_chain() {
    let h = Home::new();
    let rounds = 20;
    // Two streams of real galley processes (each `apply` logs its start and its end) while this
    // process appends through the library, as the server does.
    let empty = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..rounds {
                    let out = h.cmd_in(empty.path(), &["apply", "--auto-approve"]).stdin(Stdio::null()).output().unwrap();
                    assert_ne!(out.status.code(), Some(0), "there is no galley.ncl there");
                }
            });
        }
        s.spawn(|| {
            let log = Log::open(&h.home);
            for i in 0..rounds * 2 {
                log.append(Event::new(Actor::Token("abc".into()), "admin.preview.list", format!("#{i}"), Outcome::Ok)).unwrap();
            }
        });
    });
    let entries = h.entries();
    assert_eq!(entries.len(), rounds * 2 * 2 + rounds * 2);
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=entries.len() as u64).collect::<Vec<_>>());
    let out = h.galley(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let started = entries.iter().filter(|e| e.action == "apply" && e.outcome == Outcome::Started).count();
    let failed = entries.iter().filter(|e| e.action == "apply" && e.outcome == Outcome::Failed).count();
    assert_eq!((started, failed), (rounds * 2, rounds * 2));
}

#[test]
fn the_audit_log_and_its_head_are_owner_only() {
    let h = Home::new();
    let empty = tempfile::tempdir().unwrap();
    let _ = h.cmd_in(empty.path(), &["apply", "--auto-approve"]).output().unwrap();
    for name in ["audit.log", "audit.head", "audit.lock"] {
        let mode = std::fs::metadata(h.home.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

fn refuses(h: &Home, args: &[&str]) -> String {
    let out = h.galley(args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("refusing to run"), "{said}");
    assert!(said.contains("help: galley refuses to act unlogged"), "{said}");
    said
}

#[test]
fn an_unwritable_audit_log_makes_apply_and_secret_set_refuse_before_acting() {
    let h = Home::new();
    std::fs::create_dir(h.log()).unwrap();
    refuses(&h, &["apply", "--auto-approve"]);
    refuses(&h, &["destroy", "--auto-approve"]);
    // Nothing ran: no instance state, no secret store.
    assert!(!h.home.join("state").exists());
    let mut set = h.cmd(&["secret", "set", "TOKEN"]);
    let mut child = set.env("GALLEY_MASTER_KEY", KEY).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // galley refuses before it reads the value, and may have exited before it is written.
    let written = child.stdin.take().unwrap().write_all(CANARY.as_bytes());
    assert!(written.as_ref().map_or_else(|e| e.kind() == std::io::ErrorKind::BrokenPipe, |_| true), "{written:?}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refusing to run `secret.set`"), "{}", text(&out));
    assert!(!h.home.join("secrets").exists(), "the secret was stored unlogged");
}

#[test]
fn a_full_disk_under_the_audit_log_makes_apply_refuse() {
    let h = Home::new();
    std::os::unix::fs::symlink("/dev/full", h.log()).unwrap();
    let said = refuses(&h, &["apply", "--auto-approve"]);
    assert!(said.contains("is not a regular file"), "{said}");
}

#[test]
fn secret_commands_are_logged_with_names_and_never_values() {
    let h = Home::new();
    let mut child = h.cmd(&["secret", "set", "MODEL_KEY"]).env("GALLEY_MASTER_KEY", KEY).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(CANARY.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(h.cmd(&["secret", "rm", "MODEL_KEY"]).env("GALLEY_MASTER_KEY", KEY).status().unwrap().code(), Some(0));
    let entries = h.entries();
    let seen: Vec<(&str, Outcome)> = entries.iter().map(|e| (e.action.as_str(), e.outcome)).collect();
    assert_eq!(seen, [("secret.set", Outcome::Started), ("secret.set", Outcome::Ok), ("secret.rm", Outcome::Started), ("secret.rm", Outcome::Ok)]);
    assert!(entries[0].target.starts_with("MODEL_KEY@"), "{:?}", entries[0]);
    assert!(entries[0].actor.starts_with("cli:"), "{:?}", entries[0]);
    assert!(!std::fs::read_to_string(h.log()).unwrap().contains(CANARY));
}

#[test]
fn show_filters_by_actor_action_and_time() {
    let h = Home::new();
    let log = Log::open(&h.home);
    for (time, actor, action) in [(1_700_000_000, Actor::Cli("alice".into()), "apply"), (1_700_003_600, Actor::Token("t1".into()), "admin.preview.destroy")] {
        let log = log.clone().with_clock(galley::clock::Clock::fixed(time));
        log.append(Event::new(actor, action, "x", Outcome::Ok)).unwrap();
    }
    let show = |args: &[&str]| {
        let out = h.galley(&[&["--format", "json", "audit", "show"], args].concat());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(show(&[]), [1, 2]);
    assert_eq!(show(&["--actor", "token:"]), [2]);
    assert_eq!(show(&["--action", "apply"]), [1]);
    assert_eq!(show(&["--since", "2023-11-14T23:00:00Z"]), [2]);
    let text_out = h.galley(&["audit", "show", "--actor", "cli:alice"]);
    let shown = String::from_utf8_lossy(&text_out.stdout).into_owned();
    assert!(shown.starts_with("2023-11-14T22:13:20Z      1 cli:alice"), "{shown}");
    let bad = h.galley(&["audit", "show", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("--since: `yesterday` is not a duration"), "{}", text(&bad));
}

#[test]
fn apply_cp_and_destroy_on_podman_are_logged_and_an_unwritable_log_stops_a_real_apply() {
    if !runtime_available() {
        return;
    }
    let p = TestProject::new("audit").with_image("box");
    let config = |command: &str| {
        p.config(&format!(
            r#"  images.box = {{}},
  sandboxes.agent = galley.presets.untrusted & {{
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "{command}"],
    volumes = [{{ name = "workspace", path = "/workspace" }}],
  }},"#
        ))
    };
    config("1000000");
    p.galley_code(&["apply", "--auto-approve"], 0);
    let container = p.container("default", "agent");
    let id = podman_ok(&["container", "inspect", "--format", "{{.Id}}", &container]);
    let local = p.dir.path().join("note.txt");
    std::fs::write(&local, "hello").unwrap();
    p.galley_code(&["cp", &local.display().to_string(), "agent:/workspace"], 0);

    // With the log unwritable, a changed config is not applied: the old container stays.
    let log = p.home.path().join("audit.log");
    std::fs::rename(&log, p.home.path().join("audit.kept")).unwrap();
    std::fs::create_dir(&log).unwrap();
    config("2000000");
    let refused = p.galley_code(&["apply", "--auto-approve"], 2);
    assert!(refused.contains("refusing to run `apply`"), "{refused}");
    assert_eq!(podman_ok(&["container", "inspect", "--format", "{{.Id}}", &container]), id, "apply acted unlogged");
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(p.home.path().join("audit.kept"), &log).unwrap();
    p.galley_code(&["destroy", "--auto-approve"], 0);

    let entries = Log::open(p.home.path()).read().unwrap();
    let seen: Vec<(&str, Outcome)> = entries.iter().map(|e| (e.action.as_str(), e.outcome)).collect();
    let want = [("apply", Outcome::Started), ("apply", Outcome::Ok), ("cp.in", Outcome::Started), ("cp.in", Outcome::Ok), ("destroy", Outcome::Started), ("destroy", Outcome::Ok)];
    assert_eq!(seen, want);
    assert!(entries[2].target.starts_with("default/agent:/workspace@"), "{:?}", entries[2]);
    assert_eq!(Log::open(p.home.path()).verify().unwrap().broken, None);
}

/// A tmpfs of `kib` KiB mounted on `dir`, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, kib: u32) -> Option<Mount> {
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "galley-test-full"]).arg(dir).status();
        ok.is_ok_and(|s| s.success()).then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_makes_apply_refuse_and_leaves_the_chain_whole() {
    let h = Home::new();
    let Some(_mount) = Mount::tmpfs(&h.home, 16 * 1024) else {
        support::skip("cannot mount a tmpfs (needs root)");
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let _ = h.cmd_in(empty.path(), &["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(h.entries().len(), 2);
    // Fill the disk: the log's last page may still take a line, the head's new file cannot.
    let mut filler = std::fs::File::create(h.home.join("filler")).unwrap();
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    drop(filler);
    let said = refuses(&h, &["apply", "--auto-approve"]);
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(h.entries().len(), 2, "the refused line was taken back");
    let verify = h.galley(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

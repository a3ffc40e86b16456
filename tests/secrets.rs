//! `galley secret` through the real binary: round trips, key checks, and a canary value that
//! must never show in any output, at any verbosity.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use galley::secrets::{SecretKey, Store};

const CANARY: &str = "canary-b81e2f-do-not-print";
const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (home, project) = (dir.path().join("home"), dir.path().join("proj"));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("galley.ncl"), "{ name = \"demo\" }\n").unwrap();
        Env { _dir: dir, home, project }
    }

    /// Run `galley -C proj <args>` with `GALLEY_MASTER_KEY=key` (unset when `None`).
    fn run(&self, key: Option<&str>, args: &[&str], stdin: &str, extra_env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_galley"));
        cmd.arg("-C").arg(&self.project).args(args);
        cmd.env("GALLEY_HOME", &self.home).env_remove("GALLEY_MASTER_KEY").env_remove("GALLEY_NEW_MASTER_KEY");
        if let Some(key) = key {
            cmd.env("GALLEY_MASTER_KEY", key);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        for a in args {
            assert!(!a.contains(CANARY), "the canary must never be passed in argv");
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn store_path(&self) -> PathBuf {
        self.home.join("secrets/demo.json")
    }

    fn value(&self, key: &str, name: &str) -> Vec<u8> {
        let store = Store::open(&self.home, "demo", SecretKey::parse(key, "K").unwrap()).unwrap();
        store.get(name).unwrap().expose_secret().to_vec()
    }
}

fn names(run: &Run) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    json.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn set_list_rm_rotate_round_trip() {
    let env = Env::new();
    let set = env.run(Some(KEY_A), &["secret", "set", "MODEL_API_KEY"], &format!("{CANARY}\n"), &[]);
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(set.stderr.contains("set secret `MODEL_API_KEY` (version 1)"), "{}", set.stderr);
    assert_eq!(env.run(Some(KEY_A), &["secret", "set", "OTHER"], "two", &[]).code, 0);
    assert_eq!(env.value(KEY_A, "MODEL_API_KEY"), CANARY.as_bytes(), "one trailing newline is trimmed");

    let list = env.run(Some(KEY_A), &["secret", "list"], "", &[]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[1].starts_with("MODEL_API_KEY ") && lines[2].starts_with("OTHER "), "{}", list.stdout);
    let json = env.run(Some(KEY_A), &["--format", "json", "secret", "list"], "", &[]);
    assert_eq!(names(&json), ["MODEL_API_KEY", "OTHER"]);
    let first: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(first[0]["created"].as_str().unwrap().ends_with('Z') && first[0]["version"] == 1);

    let rm = env.run(Some(KEY_A), &["secret", "rm", "OTHER"], "", &[]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(names(&env.run(Some(KEY_A), &["--format", "json", "secret", "list"], "", &[])), ["MODEL_API_KEY"]);
    let again = env.run(Some(KEY_A), &["secret", "rm", "OTHER"], "", &[]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("no secret named `OTHER`") && again.stderr.contains("help:"), "{}", again.stderr);

    let rotate = env.run(Some(KEY_A), &["secret", "rotate-master"], "", &[("GALLEY_NEW_MASTER_KEY", KEY_B)]);
    assert_eq!(rotate.code, 0, "{}", rotate.stderr);
    assert!(rotate.stderr.contains("re-wrapped 1 secret "), "{}", rotate.stderr);
    let old = env.run(Some(KEY_A), &["secret", "list"], "", &[]);
    assert_eq!(old.code, 2);
    assert!(old.stderr.contains("does not match the secret store") && old.stderr.contains("key check"), "{}", old.stderr);
    assert_eq!(names(&env.run(Some(KEY_B), &["--format", "json", "secret", "list"], "", &[])), ["MODEL_API_KEY"]);
    assert_eq!(env.value(KEY_B, "MODEL_API_KEY"), CANARY.as_bytes());

    let key_c = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let by_stdin = env.run(Some(KEY_B), &["secret", "rotate-master"], &format!("{key_c}\n"), &[]);
    assert_eq!(by_stdin.code, 0, "{}", by_stdin.stderr);
    assert_eq!(env.value(&key_c, "MODEL_API_KEY"), CANARY.as_bytes());
    assert_eq!(env.run(Some(KEY_B), &["secret", "list"], "", &[]).code, 2);
}

#[test]
fn the_canary_never_reaches_any_output_at_any_verbosity() {
    for flags in [&[][..], &["-v"], &["-vv"], &["--format", "json", "-vv"]] {
        let env = Env::new();
        let with = |rest: &[&'static str]| [flags, rest].concat();
        let runs = [
            env.run(Some(KEY_A), &with(&["secret", "set", "TOKEN"]), CANARY, &[]),
            env.run(Some(KEY_A), &with(&["secret", "set", "TOKEN"]), CANARY, &[]),
            env.run(Some(KEY_A), &with(&["secret", "list"]), "", &[]),
            env.run(Some(KEY_B), &with(&["secret", "set", "TOKEN"]), CANARY, &[]),
            env.run(Some(KEY_A), &with(&["secret", "rotate-master"]), "", &[("GALLEY_NEW_MASTER_KEY", KEY_B)]),
            env.run(Some(KEY_B), &with(&["secret", "list"]), "", &[]),
            env.run(Some(KEY_B), &with(&["secret", "rm", "TOKEN"]), "", &[]),
        ];
        let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
        assert_eq!(codes, [0, 0, 0, 2, 0, 0, 0], "{flags:?}: {:?}", runs.iter().map(|r| &r.stderr).collect::<Vec<_>>());
        for run in &runs {
            for text in [&run.stdout, &run.stderr] {
                assert!(!text.contains(CANARY), "{flags:?}: {text}");
                assert!(!text.contains(KEY_A) && !text.contains(KEY_B), "{flags:?}: {text}");
            }
        }
        if flags.contains(&"-v") {
            assert!(runs[2].stderr.contains("store: "), "{}", runs[2].stderr);
        }
    }
}

#[test]
fn values_in_argv_are_refused_without_echoing_them() {
    let env = Env::new();
    let run = env.run(Some(KEY_A), &["secret", "set", "TOKEN", "hunter2-in-argv"], "", &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("never taken from arguments") && run.stderr.contains("help: pipe the value on stdin"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2-in-argv") && !run.stdout.contains("hunter2-in-argv"), "{}", run.stderr);
    assert!(!env.store_path().exists());
}

#[test]
fn missing_or_malformed_master_keys_are_named_and_never_echoed() {
    let env = Env::new();
    let missing = env.run(None, &["secret", "list"], "", &[]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("GALLEY_MASTER_KEY is not set"), "{}", missing.stderr);
    let short = "0123456789abcdef0123456789abcdef";
    let bad = env.run(Some(short), &["secret", "set", "TOKEN"], CANARY, &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("GALLEY_MASTER_KEY is not a 32-byte key written as 64 hex digits or base64"), "{}", bad.stderr);
    assert!(!bad.stderr.contains(short) && !bad.stderr.contains(CANARY), "{}", bad.stderr);
    let same = env.run(Some(KEY_A), &["secret", "set", "TOKEN"], CANARY, &[]);
    assert_eq!(same.code, 0);
    let rotate = env.run(Some(KEY_A), &["secret", "rotate-master"], KEY_A, &[]);
    assert_eq!(rotate.code, 2);
    assert!(rotate.stderr.contains("the same as the current one"), "{}", rotate.stderr);
}

#[test]
fn the_store_file_is_owner_only_and_holds_no_plaintext() {
    let env = Env::new();
    assert_eq!(env.run(Some(KEY_A), &["secret", "set", "TOKEN"], CANARY, &[]).code, 0);
    let path = env.store_path();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(CANARY) && !text.contains(KEY_A));
    assert!(text.contains("\"format\": \"galley-secrets\"") && text.contains("\"version\": 1"), "{text}");
}

#[test]
fn empty_values_and_bad_names_are_refused() {
    let env = Env::new();
    let empty = env.run(Some(KEY_A), &["secret", "set", "TOKEN"], "\n", &[]);
    assert_eq!(empty.code, 2);
    assert!(empty.stderr.contains("the value for `TOKEN` is empty"), "{}", empty.stderr);
    let bad = env.run(Some(KEY_A), &["secret", "set", "../escape"], CANARY, &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("invalid secret name `../escape`"), "{}", bad.stderr);
    assert!(!Path::new(&env.store_path()).exists());
}

struct Terminal {
    code: i32,
    stderr: String,
    echoed: String,
}

/// Run `galley -C proj <args>` with stdin on a pseudo-terminal; after each prompt appears on
/// stderr, type the matching line.
fn on_terminal(env: &Env, key: &str, args: &[&str], dialogue: &[(&str, &str)]) -> Terminal {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors that this function then owns.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe { (std::fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
        .arg("-C")
        .arg(&env.project)
        .args(args)
        .env("GALLEY_HOME", &env.home)
        .env("GALLEY_MASTER_KEY", key)
        .env_remove("GALLEY_NEW_MASTER_KEY")
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for (prompt, line) in dialogue {
        while !String::from_utf8_lossy(&seen).ends_with(prompt) {
            let mut byte = [0u8; 1];
            assert_eq!(stderr.read(&mut byte).unwrap(), 1, "no prompt {prompt:?}: {}", String::from_utf8_lossy(&seen));
            seen.push(byte[0]);
        }
        (&master).write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    stderr.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut echoed = Vec::new();
    let _ = (&master).read_to_end(&mut echoed); // ends with EAGAIN or EIO once drained
    Terminal {
        code: status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&seen).into_owned(),
        echoed: String::from_utf8_lossy(&echoed).into_owned(),
    }
}

#[test]
fn a_terminal_gets_a_prompt_that_does_not_echo() {
    let env = Env::new();
    let t = on_terminal(&env, KEY_A, &["secret", "set", "TOKEN"], &[("value for TOKEN: ", CANARY)]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert!(!t.echoed.contains(CANARY), "echoed: {}", t.echoed);
    assert!(!t.stderr.contains(CANARY), "{}", t.stderr);
    assert_eq!(env.value(KEY_A, "TOKEN"), CANARY.as_bytes());
}

#[test]
fn rotation_at_a_terminal_asks_twice_and_stops_on_a_mismatch() {
    let env = Env::new();
    assert_eq!(env.run(Some(KEY_A), &["secret", "set", "TOKEN"], CANARY, &[]).code, 0);
    let before = std::fs::read(env.store_path()).unwrap();
    let args = ["secret", "rotate-master"];
    let typo = on_terminal(&env, KEY_A, &args, &[("new master key: ", KEY_B), ("repeat the new master key: ", KEY_A)]);
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(typo.stderr.contains("the two new master keys differ; nothing was changed"), "{}", typo.stderr);
    assert_eq!(std::fs::read(env.store_path()).unwrap(), before);
    let ok = on_terminal(&env, KEY_A, &args, &[("new master key: ", KEY_B), ("repeat the new master key: ", KEY_B)]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(!ok.echoed.contains(KEY_B) && !ok.stderr.contains(KEY_B), "{}{}", ok.echoed, ok.stderr);
    assert_eq!(env.value(KEY_B, "TOKEN"), CANARY.as_bytes());
}

#[test]
fn a_store_record_rolled_back_to_an_older_copy_is_refused() {
    let env = Env::new();
    assert_eq!(
        env.run(Some(KEY_A), &["secret", "set", "TOKEN"], "old-value\n", &[])
            .code,
        0
    );
    let old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.store_path()).unwrap()).unwrap();
    assert_eq!(
        env.run(
            Some(KEY_A),
            &["secret", "set", "TOKEN"],
            "rotated-value\n",
            &[]
        )
        .code,
        0
    );
    let mut now: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.store_path()).unwrap()).unwrap();
    now["secrets"]["TOKEN"] = old["secrets"]["TOKEN"].clone();
    std::fs::write(env.store_path(), serde_json::to_vec_pretty(&now).unwrap()).unwrap();
    // The old value is never delivered: every use of the record refuses it, naming it.
    let err = Store::open(&env.home, "demo", SecretKey::parse(KEY_A, "K").unwrap())
        .unwrap()
        .get("TOKEN")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("secret `TOKEN` in the store is not the record galley last wrote"),
        "{err}"
    );
    let other = env.run(Some(KEY_A), &["secret", "set", "OTHER"], "x\n", &[]);
    assert_ne!(other.code, 0);
    assert!(
        other
            .stderr
            .contains("version 1 found, the store's index says version 2"),
        "{}",
        other.stderr
    );
    assert!(other.stderr.contains("help:"), "{}", other.stderr);
    let rotate = env.run(
        Some(KEY_A),
        &["secret", "rotate-master"],
        "",
        &[("GALLEY_NEW_MASTER_KEY", KEY_B)],
    );
    assert_ne!(rotate.code, 0, "{}", rotate.stderr);
    // Setting it again is the repair.
    assert_eq!(
        env.run(
            Some(KEY_A),
            &["secret", "set", "TOKEN"],
            "right-value\n",
            &[]
        )
        .code,
        0
    );
    assert_eq!(env.value(KEY_A, "TOKEN"), b"right-value");
}

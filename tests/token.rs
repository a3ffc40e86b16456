//! `galley token` through the real binary: the token is printed once and its secret part is
//! found nowhere after (files under GALLEY_HOME, later output, the audit log); expiry is
//! mandatory and capped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

fn galley(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .env("GALLEY_HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("GALLEY_TEST_NOW")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn all(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        Home { _dir: dir, home }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = galley(&self.home, args);
        assert!(out.status.success(), "{args:?}: {}", all(&out));
        out
    }

    /// Every byte of every file under GALLEY_HOME, with its path.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() { walk(&p, out) } else { out.push((p.clone(), std::fs::read(&p).unwrap())) }
            }
        }
        let mut out = Vec::new();
        walk(&self.home, &mut out);
        out
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn token_secret_never_appears_in_home_output_or_audit_log() {
    let h = Home::new();
    let created = h.ok(&["token", "create", "--name", "ci", "--scope", "previews:write", "--ttl", "30d"]);
    let token = String::from_utf8(created.stdout.clone()).unwrap().trim().to_owned();
    assert!(token.starts_with("glt_") && token.len() == 42, "{token}");
    let secret = &token[4..36];
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(!stderr.contains(secret), "the token is printed once, on stdout");
    assert!(stderr.contains("this is the only time the token is shown"), "{stderr}");
    let id = stderr.split_whitespace().nth(2).unwrap().to_owned();

    let list = h.ok(&["token", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(listed.contains(&id) && listed.contains("previews:write") && listed.contains("active"), "{listed}");
    let mut later = vec![list, h.ok(&["--format", "json", "token", "list"]), h.ok(&["-vv", "token", "list"])];
    let rotated = h.ok(&["token", "rotate", &id, "--grace", "5m"]);
    let new_token = String::from_utf8(rotated.stdout.clone()).unwrap().trim().to_owned();
    assert_ne!(new_token, token);
    later.push(rotated);
    later.push(h.ok(&["token", "revoke", &id]));
    later.extend([h.ok(&["audit", "show"]), h.ok(&["--format", "json", "audit", "show"]), h.ok(&["audit", "verify"])]);
    for out in &later {
        assert!(!all(out).contains(secret), "the secret shows again: {}", all(out));
    }
    let files = h.files();
    assert!(files.iter().any(|(p, _)| p.ends_with("tokens.json")));
    for (path, bytes) in &files {
        assert!(!contains(bytes, secret), "{} holds the secret", path.display());
        assert!(!contains(bytes, &new_token[4..36]), "{} holds the rotated token's secret", path.display());
    }
    let log = std::fs::read_to_string(h.home.join("audit.log")).unwrap();
    for action in ["token.create", "token.rotate", "token.revoke"] {
        assert!(log.contains(&format!("\"action\":\"{action}\"")), "{action} logged: {log}");
    }
}

#[test]
fn token_expiry_is_mandatory_and_at_most_90_days() {
    let h = Home::new();
    let missing = galley(&h.home, &["token", "create", "--name", "ci", "--scope", "admin"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(all(&missing).contains("--ttl"), "{}", all(&missing));
    let long = galley(&h.home, &["token", "create", "--name", "ci", "--scope", "admin", "--ttl", "91d"]);
    assert_eq!(long.status.code(), Some(2));
    assert!(all(&long).contains("a token must expire, within at most 90 days"), "{}", all(&long));
    let scope = galley(&h.home, &["token", "create", "--name", "ci", "--scope", "root", "--ttl", "1d"]);
    assert!(all(&scope).contains("`root` is not a scope: use previews:read, previews:write or admin"), "{}", all(&scope));
    assert!(h.ok(&["token", "create", "--name", "ci", "--scope", "admin", "--ttl", "90d"]).status.success());
    let revoked = galley(&h.home, &["token", "revoke", "000000000000"]);
    assert!(all(&revoked).contains("there is no token with id `000000000000`"), "{}", all(&revoked));
}

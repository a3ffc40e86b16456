//! `galley check`, `show` and `init` on the examples and on bad-config fixtures.
//!
//! Each fixture under tests/fixtures/check starts with `# expect: CODE SEVERITY LINE:COL`: the
//! first diagnostic must have that code and severity and point at that line and column (the
//! offending field, not the whole record). The rendered text is pinned by a snapshot.

mod support;

use std::path::Path;

use support::{Sandbox, galley_in, repo, stderr, stdout};

fn fixtures() -> Vec<(String, String)> {
    let dir = repo().join("tests/fixtures/check");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ncl"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn there_are_at_least_twenty_bad_config_fixtures() {
    let bad = fixtures().iter().filter(|(_, t)| t.lines().next().unwrap().contains(" error ")).count();
    assert!(bad >= 20, "only {bad} error fixtures");
}

#[test]
fn every_fixture_reports_its_code_at_the_offending_field() {
    let mut failures = Vec::new();
    for (name, text) in fixtures() {
        // A fixture may start with a byte-order mark, which galley accepts.
        let header = text.trim_start_matches('\u{feff}').lines().next().unwrap();
        let expect: Vec<&str> = header.trim_start_matches("# expect: ").split(' ').collect();
        let (code, severity, pos) = (expect[0], expect[1], expect[2]);
        let (line, col) = pos.split_once(':').unwrap();
        let project = Sandbox::with_config(&text);

        let json = project.galley(&["check", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("{name}: bad JSON ({e}): {}", stdout(&json)));
        let first = &report["diagnostics"][0];
        let got = format!(
            "{} {} {}:{}",
            first["code"].as_str().unwrap_or("-"),
            first["severity"].as_str().unwrap_or("-"),
            first["start"]["line"],
            first["start"]["column"]
        );
        if got != format!("{code} {severity} {line}:{col}") {
            failures.push(format!("{name}: expected {code} {severity} {pos}, got {got}"));
        }
        assert_eq!(first["file"], "galley.ncl", "{name}");
        assert!(first["help"].as_str().is_some_and(|h| !h.is_empty()), "{name}: no help");
        let expected_exit = if severity == "error" { 1 } else { 0 };
        assert_eq!(json.status.code(), Some(expected_exit), "{name}");

        let text_out = project.galley(&["check"]);
        assert_eq!(text_out.status.code(), Some(expected_exit), "{name}");
        let rendered = stderr(&text_out);
        assert!(rendered.contains(&format!("galley.ncl:{line}:{col}")), "{name}: {rendered}");
        insta::assert_snapshot!(name.clone(), rendered);

        if severity == "warning" {
            let denied = project.galley(&["check", "--deny", "warnings"]);
            assert_eq!(denied.status.code(), Some(1), "{name}: --deny warnings must fail");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn example(name: &str) -> std::path::PathBuf {
    repo().join("examples").join(name)
}

#[test]
fn examples_check_clean_with_warnings_denied() {
    let home = tempfile::tempdir().unwrap();
    for name in ["hello", "web", "agent"] {
        let out = galley_in(&example(name), home.path(), &["check", "--deny", "warnings"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{name} printed findings");
        let json = galley_in(&example(name), home.path(), &["check", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(v["errors"], 0);
        assert_eq!(v["warnings"], 0);
    }
}

#[test]
fn show_is_byte_identical_across_runs_and_source_order() {
    let home = tempfile::tempdir().unwrap();
    let first = galley_in(&example("web"), home.path(), &["show"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = galley_in(&example("web"), home.path(), &["show"]);
    assert_eq!(first.stdout, second.stdout);

    // The same config with fields reordered, comments added and CRLF line endings.
    let original = std::fs::read_to_string(example("web").join("galley.ncl")).unwrap();
    let reordered = reorder_top_level(&original);
    assert_ne!(reordered, original);
    let project = Sandbox::with_config(&reordered.replace('\n', "\r\n"));
    copy_dir(&example("web").join("site"), &project.path().join("site"));
    let third = project.galley(&["show"]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert_eq!(stdout(&first), stdout(&third));

    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["sandboxes"]["web"]["read_only"], true, "defaults are filled in");
    assert_eq!(v["sandboxes"]["web"]["ports"][0]["address"], "127.0.0.1");
    assert_eq!(v["sandboxes"]["web"]["capabilities"], serde_json::json!([]));
}

/// Move the `sandboxes.web` block above `images.web` and sprinkle comments.
fn reorder_top_level(text: &str) -> String {
    let start = text.find("  images.web = {").unwrap();
    let mid = text.find("  sandboxes.web =").unwrap();
    let end = text.rfind("}").unwrap();
    format!(
        "# reordered\n{}  # sandboxes first\n{}{}{}",
        &text[..start],
        &text[mid..end],
        &text[start..mid],
        &text[end..]
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn init_writes_a_config_that_checks_clean_and_refuses_to_overwrite() {
    let project = Sandbox::new();
    let out = project.galley(&["init", "--name", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let check = project.galley(&["check", "--deny", "warnings"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let again = project.galley(&["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn missing_config_is_an_error_naming_the_directory() {
    let project = Sandbox::new();
    let out = project.galley(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no galley.ncl in"), "{err}");
    assert!(err.contains("galley init"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let project = Sandbox::new();
    let out = project.galley(&["check", "--deny", "everything"]);
    assert_eq!(out.status.code(), Some(2));
    let out = project.galley(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_are_generated_for_bash() {
    let project = Sandbox::new();
    let out = project.galley(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("_galley()"));
}

#[test]
fn imported_files_get_their_own_diagnostics() {
    let project = Sandbox::with_config("{ name = \"imp\", sandboxes = import \"sandboxes.ncl\", images.app = {} }\n");
    project.write("sandboxes.ncl", "{\n  app = {\n    image = \"app\",\n    ports = [{ container = 0, host = 80 }],\n  },\n}\n");
    let out = project.galley(&["check", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["file"], "sandboxes.ncl");
    assert_eq!(v["diagnostics"][0]["code"], "G021");
    assert_eq!(v["diagnostics"][0]["start"]["line"], 4);
}

/// Every command loads the project the same way: a lint error stops `galley secret` too (it
/// used to go on and open the store of a project `galley check` rejects).
#[test]
fn lint_errors_stop_secret_commands_like_every_other_command() {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/check/duplicate-host-port.ncl")).unwrap();
    let project = Sandbox::with_config(&text);
    let key = "ab".repeat(32);
    for args in [&["secret", "list"][..], &["show"], &["export", "kube", "--out", "-"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_galley"))
            .arg("-C")
            .arg(project.path())
            .args(args)
            .env("GALLEY_HOME", project.home.path())
            .env("NO_COLOR", "1")
            .env(galley::env_vars::GALLEY_MASTER_KEY, &key)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "galley {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("G110"), "galley {args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "galley {args:?}");
    }
}

#[test]
fn a_literal_secret_is_not_repeated_into_ci_logs_by_check() {
    for (name, value) in [
        ("secret-literal-value", "ghp_0123456789abcdef"),
        ("secret-value-field", "ghp_0123456789abcdef"),
        ("secret-in-env", "tok_0123456789"),
    ] {
        let text = std::fs::read_to_string(repo().join(format!("tests/fixtures/check/{name}.ncl"))).unwrap();
        assert!(text.contains(value), "{name}: the fixture holds the value");
        let project = Sandbox::with_config(&text);
        for args in [&["check"][..], &["check", "--format", "json"], &["lock"], &["check", "-vv"]] {
            let out = project.galley(args);
            assert!(matches!(out.status.code(), Some(1 | 2)), "{name} {args:?}");
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(all.contains("G102"), "{name} {args:?}: {all}");
            assert!(!all.contains(value) && !all.contains(&value[4..]), "{name} {args:?} repeats the value: {all}");
        }
        let shown = stderr(&project.galley(&["check"]));
        assert!(shown.contains(&"*".repeat(value.len())), "{name}: the masked value is shown in its place: {shown}");
    }
}

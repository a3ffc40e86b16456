//! Unit tests of the audit log: the chain, each kind of tampering, modes, refusals and filters.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn event(n: usize) -> Event {
    Event::new(Actor::Cli("alice".into()), "secret.set", format!("API_KEY{n}"), Outcome::Ok)
}

fn log_with(n: usize) -> (tempfile::TempDir, Log) {
    let home = tempfile::tempdir().unwrap();
    let log = Log::open(home.path()).with_clock(Clock::fixed(1_700_000_000));
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
    (home, log)
}

fn rewrite(log: &Log, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(log.path()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    if !lines.is_empty() {
        out.push('\n');
    }
    std::fs::write(log.path(), out).unwrap();
}

fn broken(log: &Log) -> Break {
    log.verify().unwrap().broken.expect("the tampering is detected")
}

#[test]
fn entries_chain_each_line_to_the_one_before() {
    let (_home, log) = log_with(3);
    let entries = log.read().unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(entries[0].prev, GENESIS);
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(entries[1].prev, entry::hash(lines[0]));
    assert_eq!(entries[2].time, "2023-11-14T22:13:20Z");
    assert_eq!(entries[2].actor, "cli:alice");
    let report = log.verify().unwrap();
    assert_eq!((report.entries, report.head, report.broken), (3, 3, None));
}

#[test]
fn audit_log_tamper_edited_field_is_detected() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| l[1] = l[1].replace("API_KEY1", "API_KEY9"));
    assert_eq!(broken(&log), Break::Edited { line: 3 });
}

#[test]
fn audit_log_tamper_edited_last_line_is_detected() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| l[4] = l[4].replace("\"ok\"", "\"failed\""));
    assert_eq!(broken(&log), Break::EditedLast { line: 5 });
}

#[test]
fn audit_log_tamper_deleted_line_is_detected() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| {
        l.remove(2);
    });
    assert_eq!(broken(&log), Break::Deleted { line: 3, seq: 3 });
}

#[test]
fn audit_log_tamper_swapped_lines_are_detected() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| l.swap(1, 2));
    assert_eq!(broken(&log), Break::Reordered { line: 2, seq: 2, found: 3 });
}

#[test]
fn audit_log_tamper_truncated_tail_is_detected() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| l.truncate(3));
    assert_eq!(broken(&log), Break::Truncated { last: 3, head: 5 });
    rewrite(&log, Vec::clear);
    assert_eq!(broken(&log), Break::Truncated { last: 0, head: 5 });
}

#[test]
fn audit_log_tamper_line_appended_by_hand_is_detected() {
    let (_home, log) = log_with(5);
    // A forger who knows the format: the right seq and the right prev.
    let last = std::fs::read_to_string(log.path()).unwrap().lines().last().unwrap().to_owned();
    let forged = event(9).into_entry("2023-11-14T22:13:21Z".into(), 6, entry::hash(&last));
    rewrite(&log, |l| l.push(forged.line()));
    assert_eq!(broken(&log), Break::Appended { line: 6, head: 5 });
}

#[test]
fn audit_log_tamper_garbage_line_is_detected() {
    let (_home, log) = log_with(3);
    rewrite(&log, |l| l[0].push_str("junk"));
    assert!(matches!(broken(&log), Break::Malformed { line: 1, .. }));
}

#[test]
fn audit_log_tamper_deleted_head_is_detected_and_refuses_appends() {
    let (home, log) = log_with(2);
    std::fs::remove_file(home.path().join(HEAD_FILE)).unwrap();
    assert_eq!(broken(&log), Break::NoHead);
    assert!(matches!(log.append(event(3)), Err(LogError::NoHead { .. })));
}

#[test]
fn an_append_after_a_truncation_does_not_hide_it() {
    let (_home, log) = log_with(5);
    rewrite(&log, |l| l.truncate(3));
    log.append(event(6)).unwrap();
    assert_eq!(broken(&log), Break::Deleted { line: 4, seq: 4 });
}

#[test]
fn audit_log_is_owner_only_and_mode_is_restored() {
    let (home, log) = log_with(1);
    for name in [LOG_FILE, HEAD_FILE, LOCK_FILE] {
        let mode = std::fs::metadata(home.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    std::fs::set_permissions(log.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    log.append(event(2)).unwrap();
    assert_eq!(std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn an_unwritable_log_is_an_error_not_a_silent_skip() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(LOG_FILE)).unwrap();
    assert!(matches!(Log::open(home.path()).append(event(0)), Err(LogError::Write { .. } | LogError::NotAFile(_))));
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", home.path().join(LOG_FILE)).unwrap();
    assert!(matches!(Log::open(home.path()).append(event(0)), Err(LogError::NotAFile(_))));
}

#[test]
fn filters_match_exact_values_or_families() {
    let (_home, log) = log_with(2);
    let all = log.read().unwrap();
    let pick = |f: Filter| all.iter().filter(|e| f.matches(e)).count();
    assert_eq!(pick(Filter { actor: Some("cli:".into()), ..Filter::default() }), 2);
    assert_eq!(pick(Filter { actor: Some("cli:bob".into()), ..Filter::default() }), 0);
    assert_eq!(pick(Filter { action: Some("secret.".into()), ..Filter::default() }), 2);
    assert_eq!(pick(Filter { action: Some("secret".into()), ..Filter::default() }), 0);
    assert_eq!(pick(Filter { since: Some(1_700_000_001), ..Filter::default() }), 0);
    assert_eq!(pick(Filter { since: Some(1_700_000_000), ..Filter::default() }), 2);
}

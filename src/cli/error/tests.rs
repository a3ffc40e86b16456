//! The exit code and wording of each kind of failure: user errors exit 2, bugs 70.

use super::*;
use crate::diagnostic::Diagnostic;

#[test]
fn a_user_error_exits_2_with_its_message_and_help() {
    let e = CliError::user("galley.ncl already exists", Some("edit it, or remove it first"));
    assert_eq!(e.code(), 2);
    assert_eq!(e.line(), Some(("galley.ncl already exists".to_owned(), Some("edit it, or remove it first".to_owned()))));
}

#[test]
fn a_bug_exits_70_and_says_it_is_a_bug_to_report() {
    let e = CliError::Bug("index out of bounds".into());
    assert_eq!(e.code(), BUG);
    assert_eq!(BUG, 70);
    let (message, help) = e.line().unwrap();
    assert_eq!(message, "this is a bug in galley: index out of bounds");
    assert!(help.unwrap().starts_with("this is a bug in galley; please report it"));
}

#[test]
fn a_config_error_exits_1_or_2_and_a_schema_bug_in_it_exits_70() {
    let contract = || vec![Diagnostic::new(Code::Contract, "wrong value")];
    assert_eq!(CliError::config(contract()).code(), 1);
    assert_eq!(CliError::config(contract()).config_exits_as_error().code(), 2);
    assert_eq!(CliError::config(contract()).line(), None);
    let bug = vec![Diagnostic::new(Code::SchemaBug, "configuration does not match galley's model")];
    assert_eq!(CliError::config(bug).config_exits_as_error().code(), BUG);
}

#[test]
fn refusals_and_stale_locks_are_answers_of_no() {
    assert_eq!(CliError::StaleLock(vec!["image web changed".into()]).code(), 1);
    assert_eq!(CliError::Refused { message: "m".into(), help: None }.code(), 1);
    assert_eq!(CliError::user("x", None).config_exits_as_error().code(), 2);
}

#[test]
fn exit_statuses_keep_their_documented_codes() {
    let codes = [ExitStatus::Success, ExitStatus::No, ExitStatus::Changes, ExitStatus::Failed, ExitStatus::Child(7), ExitStatus::Child(300)]
        .map(ExitStatus::code);
    assert_eq!(codes, [0, 1, 2, 2, 7, 255]);
    assert_eq!(ExitStatus::no_unless(true), ExitStatus::Success);
    assert_eq!(ExitStatus::no_unless(false), ExitStatus::No);
}

#[test]
fn errors_of_the_modules_keep_their_help_lines() {
    let e: CliError = crate::runtime::RuntimeError::InstanceName("PR_7".into()).into();
    assert_eq!(e.code(), 2);
    assert_eq!(e.line().unwrap().1.as_deref(), Some("use lower-case letters, digits and dashes"));
}

#[test]
fn panic_payloads_become_the_bug_message() {
    let caught = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
    assert_eq!(panic_message(caught.as_ref()), "boom 1");
    let caught = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
    assert_eq!(panic_message(caught.as_ref()), "a panic without a message");
}

//! Settings resolution: which flag or variable wins.

use super::*;

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

fn resolve(flags: &Flags, pairs: &'static [(&'static str, &'static str)], terminals: Terminals) -> Settings {
    Settings::resolve(flags, env(pairs), terminals, |v| v.map_or(OciRuntime::ToolDefault, OciRuntime::Named))
}

const TTY: Terminals = Terminals { stderr: true, stdout: true };

#[test]
fn home_follows_galley_home_then_xdg() {
    assert_eq!(default_home(env(&[(env_vars::GALLEY_HOME, "/g"), ("HOME", "/h")])), PathBuf::from("/g"));
    assert_eq!(default_home(env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), PathBuf::from("/x/galley"));
    assert_eq!(default_home(env(&[("HOME", "/h")])), PathBuf::from("/h/.local/share/galley"));
    assert_eq!(default_home(env(&[(env_vars::GALLEY_HOME, ""), ("XDG_DATA_HOME", "rel"), ("HOME", "/h")])), PathBuf::from("/h/.local/share/galley"));
}

#[test]
fn no_color_set_to_a_value_turns_color_off_on_both_streams() {
    let s = resolve(&Flags::default(), &[(env_vars::NO_COLOR, "1")], TTY);
    assert_eq!((s.color, s.stdout_color), (false, false));
    let s = resolve(&Flags::default(), &[(env_vars::NO_COLOR, "")], TTY);
    assert_eq!((s.color, s.stdout_color), (true, true));
    let s = resolve(&Flags::default(), &[], Terminals { stderr: true, stdout: false });
    assert_eq!((s.color, s.stdout_color), (true, false));
}

#[test]
fn source_date_epoch_is_read_once_and_bad_values_mean_zero() {
    assert_eq!(resolve(&Flags::default(), &[(env_vars::SOURCE_DATE_EPOCH, " 1700000000 ")], TTY).env.source_date_epoch, 1_700_000_000);
    assert_eq!(resolve(&Flags::default(), &[(env_vars::SOURCE_DATE_EPOCH, "yesterday")], TTY).env.source_date_epoch, 0);
    assert_eq!(resolve(&Flags::default(), &[], TTY).env.source_date_epoch, 0);
}

#[test]
fn the_oci_runtime_variable_goes_to_detection_and_empty_means_unset() {
    let s = resolve(&Flags::default(), &[(env_vars::GALLEY_OCI_RUNTIME, "crun")], TTY);
    assert_eq!(s.env.oci_runtime, OciRuntime::Named("crun".into()));
    let s = resolve(&Flags::default(), &[(env_vars::GALLEY_OCI_RUNTIME, "")], TTY);
    assert_eq!(s.env.oci_runtime, OciRuntime::ToolDefault);
}

#[test]
fn flags_set_directory_format_and_verbosity() {
    let flags = Flags { directory: Some("/p".into()), format: Format::Json, quiet: false, verbose: 5 };
    let s = resolve(&flags, &[], TTY);
    assert_eq!((s.env.project_dir.as_path(), s.format), (Path::new("/p"), Format::Json));
    assert_eq!(s.env.config_path(), PathBuf::from("/p/galley.ncl"));
    assert!(s.verbosity.verbose() && s.verbosity.timings() && !s.verbosity.quiet());
    let s = resolve(&Flags { quiet: true, ..Flags::default() }, &[], TTY);
    assert!(s.verbosity.quiet() && !s.verbosity.verbose());
    assert_eq!(resolve(&Flags { verbose: 1, ..Flags::default() }, &[], TTY).verbosity, Verbosity::Verbose(1));
    assert_eq!(resolve(&Flags::default(), &[], TTY).env.project_dir, PathBuf::from("."));
}

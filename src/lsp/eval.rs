//! Evaluation in a child process. Nickel evaluation cannot be interrupted in-process, so the
//! server runs `galley -C DIR __eval --stdin` per evaluation (through [`crate::exec`], killed at
//! the time limit). The child evaluates the buffer exactly as `galley check` would and prints the
//! diagnostics as JSON with LSP ranges already computed from the text they refer to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lsp_types::Range;
use serde::{Deserialize, Serialize};

use super::text::range_of;
use crate::diagnostic::{Code, Diagnostic, Location, Severity};
use crate::exec::{Cmd, Runner};
use crate::settings::Env;

/// The hidden subcommand the server runs.
pub const SUBCOMMAND: &str = "__eval";

/// One diagnostic as the child reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDiagnostic {
    pub code: Code,
    pub error: bool,
    pub message: String,
    pub help: Option<String>,
    pub place: Option<WirePlace>,
    pub related: Vec<(WirePlace, String)>,
}

/// A range in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePlace {
    /// Absolute path.
    pub file: PathBuf,
    /// Whether the file is galley's embedded library, not one of the user's.
    pub library: bool,
    pub range: Range,
}

/// What an evaluation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Diagnostics(Vec<WireDiagnostic>),
    TimedOut,
    /// The child failed without a report (crashed, or could not be started).
    Failed(String),
}

/// Child side: evaluate `text` as the project's galley.ncl and return the JSON report.
pub fn report(settings: &Env, text: &str) -> String {
    let diagnostics = match crate::project::load_unbounded(settings, Some(text)) {
        Ok(loaded) => loaded.diagnostics,
        Err(diagnostics) => diagnostics,
    };
    let project = std::path::absolute(&settings.project_dir).unwrap_or_else(|_| settings.project_dir.clone());
    let lib = crate::lang::embedded::materialize(&settings.lib_root()).ok();
    let wire: Vec<WireDiagnostic> = diagnostics.iter().map(|d| to_wire(d, &project, lib.as_deref())).collect();
    serde_json::to_string(&wire).expect("diagnostics serialize")
}

fn to_wire(d: &Diagnostic, project: &Path, lib: Option<&Path>) -> WireDiagnostic {
    WireDiagnostic {
        code: d.code,
        error: d.severity == Severity::Error,
        message: d.message.clone(),
        help: d.help.clone(),
        place: d.location.as_ref().map(|l| place(l, project, lib)),
        related: d
            .related
            .iter()
            .map(|r| (place(&r.location, project, lib), r.message.clone()))
            // Nickel names values it made up `<generated>`; only real files can be shown.
            .filter(|(p, _)| p.library || p.file.is_file())
            .collect(),
    }
}

/// Map a user-facing file name back to an absolute path: relative to the project, or to the
/// embedded library for `galley/...` names that are not project files.
fn place(l: &Location, project: &Path, lib: Option<&Path>) -> WirePlace {
    let in_project = project.join(&l.file);
    let library = lib
        .map(|lib| lib.join(&l.file))
        .filter(|p| l.file.is_relative() && l.file.starts_with(crate::lang::embedded::PREFIX) && !in_project.exists() && p.is_file());
    WirePlace {
        library: library.is_some(),
        file: library.unwrap_or(in_project),
        range: range_of(&l.source, l.start, l.end),
    }
}

/// Server side: evaluate `text` as `project_dir/galley.ncl` in a child process.
pub fn evaluate(runner: &dyn Runner, exe: &Path, project_dir: &Path, text: &str, limit: Duration) -> Outcome {
    let cmd = Cmd::new(exe)
        .arg("-C")
        .arg(project_dir)
        .arg(SUBCOMMAND)
        .arg("--stdin")
        .stdin(text.as_bytes().to_vec())
        .timeout(limit);
    let out = match runner.run(&cmd) {
        Ok(out) => out,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if out.timed_out {
        return Outcome::TimedOut;
    }
    match serde_json::from_slice::<Vec<WireDiagnostic>>(&out.stdout) {
        Ok(diagnostics) if out.success() => Outcome::Diagnostics(diagnostics),
        _ => Outcome::Failed(format!(
            "the evaluator exited with {}: {}",
            out.code.map_or("a signal".to_owned(), |c| format!("status {c}")),
            crate::exec::tail(&out.stderr_str(), 5)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};

    #[test]
    fn the_child_is_run_with_the_buffer_and_a_time_limit() {
        let r = Recorder::default();
        r.answer("galley -C /p __eval", Output { code: Some(0), stdout: b"[]".to_vec(), ..Output::default() });
        let out = evaluate(&r, Path::new("galley"), Path::new("/p"), "{}", Duration::from_millis(5));
        assert_eq!(out, Outcome::Diagnostics(vec![]));
        let calls = r.calls.lock().unwrap();
        assert_eq!(calls[0].display(), "galley -C /p __eval --stdin");
        assert_eq!(calls[0].stdin.as_deref(), Some(&b"{}"[..]));
        assert_eq!(calls[0].timeout, Some(Duration::from_millis(5)));
    }

    #[test]
    fn timeouts_and_crashes_are_outcomes() {
        let r = Recorder::default();
        r.answer("slow", Output { timed_out: true, ..Output::default() });
        r.answer("crash", Output { code: Some(101), stderr: b"panicked".to_vec(), ..Output::default() });
        let run = |exe: &str| evaluate(&r, Path::new(exe), Path::new("/p"), "", Duration::from_secs(1));
        assert_eq!(run("slow"), Outcome::TimedOut);
        assert!(matches!(run("crash"), Outcome::Failed(m) if m.contains("status 101") && m.contains("panicked")));
    }

    #[test]
    fn library_locations_are_marked() {
        let home = tempfile::tempdir().unwrap();
        let lib = crate::lang::embedded::materialize(home.path()).unwrap();
        let src: std::sync::Arc<str> = "ab\ncd".into();
        let user = Location::new("galley.ncl".into(), src.clone(), 3, 4);
        let p = place(&user, Path::new("/proj"), Some(&lib));
        assert_eq!((p.file.as_path(), p.library), (Path::new("/proj/galley.ncl"), false));
        assert_eq!((p.range.start.line, p.range.start.character, p.range.end.character), (1, 0, 1));
        let schema = Location::new("galley/schema.ncl".into(), src, 0, 1);
        let p = place(&schema, Path::new("/proj"), Some(&lib));
        assert!(p.library && p.file.ends_with("galley/schema.ncl") && p.file.starts_with(&lib));
    }
}

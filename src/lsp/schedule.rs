//! Evaluation scheduling: debouncing, one child evaluation per project at a time, stale results
//! dropped, diagnostics published to the files they are in (and cleared where they are gone).
//!
//! One scheduler thread owns the projects' state. A change starts an evaluation at once when the
//! project has been quiet for the debounce interval, and otherwise `debounce` after the last
//! change of a burst. Evaluations run on worker threads; a result is published only if no change
//! arrived while it ran.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use lsp_server::{Message, Notification};
use lsp_types::notification::{Notification as _, PublishDiagnostics};
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, PublishDiagnosticsParams, Range, Uri,
};

use super::eval::{self, Outcome, WireDiagnostic, WirePlace};
use super::server::Docs;
use super::text::path_to_uri;
use crate::diagnostic::Code;

/// What the scheduler hears about.
#[derive(Debug)]
pub enum Event {
    /// The project with this galley.ncl changed (its buffer, or a file it may import).
    Changed(PathBuf),
    /// The project's galley.ncl was closed: clear its diagnostics.
    Closed(PathBuf),
    Finished { config: PathBuf, generation: u64, version: Option<i32>, outcome: Outcome, elapsed: Duration },
    /// The server is shutting down.
    Stop,
}

/// Where messages to the client go.
pub type Outbox = Box<dyn Fn(Message) + Send>;

/// How evaluations are run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The galley executable that runs `__eval`.
    pub exe: PathBuf,
    pub timeout: Duration,
    pub debounce: Duration,
}

#[derive(Debug, Default)]
struct Project {
    generation: u64,
    last_change: Option<Instant>,
    due: Option<Instant>,
    running: bool,
    published: BTreeSet<String>,
}

/// Run the scheduler until every sender of `events` is gone.
pub fn run(settings: Settings, docs: Docs, events: Receiver<Event>, me: Sender<Event>, out: Outbox) {
    let mut projects: HashMap<PathBuf, Project> = HashMap::new();
    loop {
        let next_due = projects.values().filter(|p| !p.running).filter_map(|p| p.due).min();
        let event = match next_due {
            Some(due) => match events.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(e) => Some(e),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match events.recv() {
                Ok(e) => Some(e),
                Err(_) => return,
            },
        };
        let now = Instant::now();
        match event {
            Some(Event::Changed(config)) => {
                let p = projects.entry(config).or_default();
                p.generation += 1;
                let quiet = p.last_change.is_none_or(|t| now.duration_since(t) >= settings.debounce);
                p.last_change = Some(now);
                p.due = Some(if quiet { now } else { now + settings.debounce });
            }
            Some(Event::Closed(config)) => {
                if let Some(p) = projects.remove(&config) {
                    for uri in p.published {
                        publish(&out, &uri, Vec::new(), None);
                    }
                }
            }
            Some(Event::Finished { config, generation, version, outcome, elapsed }) => {
                let Some(p) = projects.get_mut(&config) else { continue };
                p.running = false;
                if generation != p.generation {
                    eprintln!("galley lsp: dropped a stale evaluation of {}", config.display());
                } else {
                    eprintln!("galley lsp: evaluated {} in {} ms", config.display(), elapsed.as_millis());
                    let grouped = catch_unwind(AssertUnwindSafe(|| group(&docs, &config, outcome, settings.timeout)));
                    let Ok((config_uri, by_uri)) = grouped else {
                        eprintln!("galley lsp: internal error while publishing diagnostics");
                        continue;
                    };
                    let now_published: BTreeSet<String> = by_uri.keys().cloned().collect();
                    for gone in p.published.difference(&now_published) {
                        publish(&out, gone, Vec::new(), None);
                    }
                    for (uri, diagnostics) in by_uri {
                        publish(&out, &uri, diagnostics, version.filter(|_| uri == config_uri));
                    }
                    p.published = now_published;
                }
            }
            Some(Event::Stop) => return,
            None => {}
        }
        for (config, p) in &mut projects {
            if p.running || p.due.is_none_or(|d| d > now) {
                continue;
            }
            p.due = None;
            let snapshot = docs.snapshot(config).map(|(t, v)| (t, Some(v)));
            let Some((text, version)) = snapshot.or_else(|| Some((std::fs::read_to_string(config).ok()?, None))) else {
                continue;
            };
            p.running = true;
            let (config, generation, settings, me) = (config.clone(), p.generation, settings.clone(), me.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let dir = config.parent().unwrap_or(Path::new("/"));
                let outcome = eval::evaluate(&crate::exec::System, &settings.exe, dir, &text, settings.timeout);
                let _ = me.send(Event::Finished { config, generation, version, outcome, elapsed: started.elapsed() });
            });
        }
    }
}

type ByUri = BTreeMap<String, Vec<lsp_types::Diagnostic>>;

/// The URI of galley.ncl, and LSP diagnostics by document URI. galley.ncl always gets an entry,
/// so fixing the last error publishes an empty list.
fn group(docs: &Docs, config: &Path, outcome: Outcome, timeout: Duration) -> (String, ByUri) {
    let config_uri = docs.uri_of_path(config).unwrap_or_else(|| path_to_uri(config));
    let mut by_uri = ByUri::new();
    by_uri.insert(config_uri.clone(), Vec::new());
    let wire = match outcome {
        Outcome::Diagnostics(d) => d,
        Outcome::TimedOut => vec![WireDiagnostic {
            code: Code::Timeout,
            error: true,
            message: format!("evaluation timed out after {} ms", timeout.as_millis()),
            help: Some("look for unbounded recursion; the time limit is set by GALLEY_LSP_TIMEOUT_MS".into()),
            place: None,
            related: Vec::new(),
        }],
        Outcome::Failed(why) => {
            eprintln!("galley lsp: evaluation of {} failed: {why}", config.display());
            vec![WireDiagnostic {
                code: Code::Unreadable,
                error: true,
                message: format!("galley could not evaluate this file: {why}"),
                help: None,
                place: None,
                related: Vec::new(),
            }]
        }
    };
    for d in wire {
        let target = match &d.place {
            Some(p) if !p.library => docs.uri_of_path(&p.file).unwrap_or_else(|| path_to_uri(&p.file)),
            _ => config_uri.clone(),
        };
        by_uri.entry(target).or_default().push(to_lsp(docs, d));
    }
    (config_uri, by_uri)
}

fn to_lsp(docs: &Docs, d: WireDiagnostic) -> lsp_types::Diagnostic {
    let location = |p: &WirePlace| -> Option<Location> {
        let uri = docs.uri_of_path(&p.file).unwrap_or_else(|| path_to_uri(&p.file));
        Some(Location { uri: uri.parse::<Uri>().ok()?, range: p.range })
    };
    let own = d.place.as_ref().filter(|p| !p.library);
    let mut related: Vec<DiagnosticRelatedInformation> = Vec::new();
    if let Some(p) = d.place.as_ref().filter(|p| p.library) {
        related.extend(location(p).map(|location| DiagnosticRelatedInformation { location, message: "defined here".into() }));
    }
    for (p, message) in &d.related {
        related.extend(location(p).map(|location| DiagnosticRelatedInformation { location, message: message.clone() }));
    }
    if let (Some(help), Some(loc)) = (&d.help, own.and_then(location)) {
        related.push(DiagnosticRelatedInformation { location: loc, message: format!("help: {help}") });
    }
    lsp_types::Diagnostic {
        range: own.map_or_else(Range::default, |p| p.range),
        severity: Some(if d.error { DiagnosticSeverity::ERROR } else { DiagnosticSeverity::WARNING }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("galley".into()),
        message: d.message,
        related_information: (!related.is_empty()).then_some(related),
        ..lsp_types::Diagnostic::default()
    }
}

fn publish(out: &Outbox, uri: &str, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
    let Ok(uri) = uri.parse::<Uri>() else {
        eprintln!("galley lsp: cannot publish to {uri}: not a URI");
        return;
    };
    let params = PublishDiagnosticsParams { uri, diagnostics, version };
    out(Message::Notification(Notification::new(PublishDiagnostics::METHOD.to_owned(), params)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::Position;

    fn wire(file: &str, library: bool, line: u32) -> WireDiagnostic {
        let range = Range { start: Position { line, character: 1 }, end: Position { line, character: 4 } };
        WireDiagnostic {
            code: Code::Contract,
            error: true,
            message: "m".into(),
            help: Some("h".into()),
            place: Some(WirePlace { file: file.into(), library, range }),
            related: Vec::new(),
        }
    }

    #[test]
    fn diagnostics_go_to_their_files_and_galley_ncl_is_always_published() {
        let docs = Docs::default();
        let config = Path::new("/p/galley.ncl");
        let outcome = Outcome::Diagnostics(vec![wire("/p/lib/a b.ncl", false, 2), wire("/home/lib/galley/schema.ncl", true, 9)]);
        let (uri, by_uri) = group(&docs, config, outcome, Duration::from_secs(1));
        assert_eq!(uri, "file:///p/galley.ncl");
        let imported = &by_uri["file:///p/lib/a%20b.ncl"];
        assert_eq!(imported[0].range.start, Position { line: 2, character: 1 });
        assert_eq!(imported[0].code, Some(NumberOrString::String("G003".into())));
        // A location in galley's library is shown at the top of galley.ncl, pointing there.
        let own = &by_uri[&uri];
        assert_eq!(own[0].range, Range::default());
        let related = own[0].related_information.as_ref().unwrap();
        assert!(related[0].location.uri.as_str().ends_with("galley/schema.ncl"));

        let (_, clean) = group(&docs, config, Outcome::Diagnostics(Vec::new()), Duration::from_secs(1));
        assert_eq!(clean.len(), 1);
        assert!(clean[&uri].is_empty());
    }

    #[test]
    fn a_timeout_is_one_diagnostic() {
        let (uri, by_uri) = group(&Docs::default(), Path::new("/p/galley.ncl"), Outcome::TimedOut, Duration::from_millis(1500));
        let d = &by_uri[&uri];
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Some(NumberOrString::String("G009".into())));
        assert_eq!(d[0].message, "evaluation timed out after 1500 ms");
    }
}

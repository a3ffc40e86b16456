//! What the evaluator child sends back: the evaluated project (its JSON and the lints' findings)
//! or the diagnostics of a config that failed, as JSON. Locations carry an index
//! into one table of source texts, so each file's text crosses once, and are rebuilt with
//! [`Lines::location`] on arrival: the parent's diagnostics are the ones the child made.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Code, Diagnostic, Lines, Location, Related, Severity};

/// The child's whole answer.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Report {
    sources: Vec<String>,
    outcome: Result<Evaluated, Vec<WireDiagnostic>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Evaluated {
    json: serde_json::Value,
    diagnostics: Vec<WireDiagnostic>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireLocation {
    file: PathBuf,
    start: usize,
    end: usize,
    /// Index into [`Report::sources`].
    source: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireDiagnostic {
    code: Code,
    severity: Severity,
    message: String,
    location: Option<WireLocation>,
    label: Option<String>,
    help: Option<String>,
    notes: Vec<String>,
    related: Vec<(WireLocation, String)>,
}

/// The parts of a loaded project that cross.
#[derive(Debug)]
pub(super) struct Parts {
    pub json: serde_json::Value,
    pub diagnostics: Vec<Diagnostic>,
}

/// Source texts seen so far, by the address of their shared text.
#[derive(Default)]
struct Sources {
    texts: Vec<String>,
    seen: HashMap<usize, usize>,
}

impl Sources {
    fn put(&mut self, l: &Location) -> WireLocation {
        let key = Arc::as_ptr(&l.source).cast::<u8>() as usize;
        let source = *self.seen.entry(key).or_insert_with(|| {
            self.texts.push(l.source.to_string());
            self.texts.len() - 1
        });
        WireLocation { file: l.file.clone(), start: l.start, end: l.end, source }
    }

    fn diagnostic(&mut self, d: &Diagnostic) -> WireDiagnostic {
        WireDiagnostic {
            code: d.code,
            severity: d.severity,
            message: d.message.clone(),
            location: d.location.as_ref().map(|l| self.put(l)),
            label: d.label.clone(),
            help: d.help.clone(),
            notes: d.notes.clone(),
            related: d.related.iter().map(|r| (self.put(&r.location), r.message.clone())).collect(),
        }
    }
}

/// The child's answer for what it loaded.
pub(super) fn encode(outcome: Result<Parts, Vec<Diagnostic>>) -> String {
    let mut sources = Sources::default();
    let outcome = match outcome {
        Ok(parts) => {
            let diagnostics = parts.diagnostics.iter().map(|d| sources.diagnostic(d)).collect();
            Ok(Evaluated { json: parts.json, diagnostics })
        }
        Err(diagnostics) => Err(diagnostics.iter().map(|d| sources.diagnostic(d)).collect()),
    };
    serde_json::to_string(&Report { sources: sources.texts, outcome }).expect("the report serializes")
}

/// The parent's reading of the child's answer; `Err` says what was wrong with it.
pub(super) fn decode(bytes: &[u8]) -> Result<Result<Parts, Vec<Diagnostic>>, String> {
    let report: Report = serde_json::from_slice(bytes).map_err(|e| format!("unreadable report: {e}"))?;
    let sources: Vec<Lines> = report.sources.into_iter().map(|s| Lines::new(Arc::from(s))).collect();
    let location = |w: WireLocation| -> Result<Location, String> {
        let source = sources.get(w.source).ok_or_else(|| format!("source {} is not in the report", w.source))?;
        Ok(source.location(w.file, w.start, w.end))
    };
    let diagnostic = |w: WireDiagnostic| -> Result<Diagnostic, String> {
        Ok(Diagnostic {
            code: w.code,
            severity: w.severity,
            message: w.message,
            location: w.location.map(location).transpose()?,
            label: w.label,
            help: w.help,
            notes: w.notes,
            related: w
                .related
                .into_iter()
                .map(|(l, message)| Ok(Related { location: location(l)?, message }))
                .collect::<Result<_, String>>()?,
        })
    };
    let diagnostics = |list: Vec<WireDiagnostic>| list.into_iter().map(diagnostic).collect::<Result<Vec<_>, String>>();
    Ok(match report.outcome {
        Ok(e) => Ok(Parts { json: e.json, diagnostics: diagnostics(e.diagnostics)? }),
        Err(list) => Err(diagnostics(list)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_cross_unchanged_and_each_source_once() {
        let src: Arc<str> = "let x = 1 in\n  \u{e9}x\n".into();
        let mut d = Diagnostic::new(Code::Type, "bad").at(Some(Location::new("galley.ncl".into(), src.clone(), 15, 17)));
        d.label = Some("here".into());
        d.notes.push("a note".into());
        d.related.push(Related { location: Location::new("galley.ncl".into(), src, 4, 5), message: "x".into() });
        let text = encode(Err(vec![d.clone()]));
        assert_eq!(text.matches("let x = 1").count(), 1, "{text}");
        assert_eq!(decode(text.as_bytes()).unwrap().unwrap_err(), vec![d]);
    }

    #[test]
    fn a_report_pointing_outside_its_sources_is_refused() {
        let bad = r#"{"sources":[],"outcome":{"Err":[{"code":"G001","severity":"error","message":"m","location":{"file":"f","start":0,"end":0,"source":3},"label":null,"help":null,"notes":[],"related":[]}]}}"#;
        assert!(decode(bad.as_bytes()).unwrap_err().contains("source 3"));
    }
}

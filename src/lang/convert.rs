//! The one converter from Nickel's errors to galley diagnostics, shared by `galley check` and the
//! language server. Spans keep their file and byte range; never format a Nickel error with `{:?}`.

use nickel_lang_core::error::{Error, IntoDiagnostics, LabelStyle};
use nickel_lang_core::files::Files;

use super::{Namer, file_info};
use crate::diagnostic::{Code, Diagnostic, Location, Related, Severity};

/// Convert one Nickel error (which may render as several codespan diagnostics, one per call-stack
/// frame) into galley diagnostics; the first is the error itself.
pub(super) fn from_nickel(error: Error, mut files: Files, namer: &Namer) -> Vec<Diagnostic> {
    let default_code = match &error {
        Error::ParseErrors(_) => Code::Syntax,
        Error::TypecheckError(_) => Code::Type,
        Error::ImportError(_) => Code::Import,
        Error::ExportError(_) => Code::Export,
        _ => Code::Evaluation,
    };
    let raw = error.into_diagnostics(&mut files);
    let Some(main) = raw.into_iter().next() else {
        return vec![Diagnostic::new(default_code, "configuration error")];
    };

    let mut labels: Vec<(Location, String, bool, bool)> = main
        .labels
        .iter()
        .map(|label| {
            let (name, source, user) = file_info(&files, label.file_id, namer);
            let loc = Location::new(name, source, label.range.start, label.range.end);
            (loc, label.message.clone(), user, label.style == LabelStyle::Primary)
        })
        .collect();
    // Prefer a primary label in the user's files, then any label there, then the first label.
    let pick = labels
        .iter()
        .position(|(_, _, user, primary)| *user && *primary)
        .or_else(|| labels.iter().position(|(_, _, user, _)| *user))
        .or(if labels.is_empty() { None } else { Some(0) });
    let primary = pick.map(|i| labels.remove(i));

    let mut message = main.message.clone();
    let mut help = None;
    let mut notes = Vec::new();
    for note in &main.notes {
        match note.strip_prefix("help: ") {
            Some(h) if help.is_none() => help = Some(h.trim().to_owned()),
            _ => notes.push(note.trim().to_owned()),
        }
    }

    // A galley contract puts "[Gnnn] message" in the blame message, which Nickel shows as the
    // diagnostic message or in a label or note.
    let mut code = None;
    let carriers = std::iter::once(message.clone())
        .chain(primary.iter().map(|p| p.1.clone()))
        .chain(labels.iter().map(|l| l.1.clone()))
        .chain(notes.iter().cloned())
        .collect::<Vec<_>>();
    for text in carriers {
        if let Some((c, rest)) = galley_code(&text) {
            code = Some(c);
            message = rest;
            break;
        }
    }
    notes.retain(|n| galley_code(n).is_none());
    let galley_message = code.is_some();
    let code = code.unwrap_or_else(|| classify(&message, default_code));
    let mut message = tidy(&message);
    // Where Nickel looked is this machine's directories: say it in words, so the message is the
    // same on every machine.
    if code == Code::Import
        && let Some(i) = message.find(" (looked in [")
    {
        message.truncate(i);
        notes.push("imports are looked up beside the importing file, then in galley's library".to_owned());
    }
    // A type contract names what it expected only in a label on the schema: say it in the message
    // (galley's own validators already say it).
    if let Some((loc, _, _, _)) = labels.iter().find(|l| l.1 == "expected type").filter(|_| !galley_message) {
        let expected = loc.snippet().split_whitespace().collect::<Vec<_>>().join(" ");
        if !expected.is_empty() && expected.len() <= 80 {
            message = format!("{message}: expected {expected}");
        }
    }

    // Two values for one field: Nickel says only "non mergeable terms"; name the field and the
    // values, from the text the conflicting values were written in.
    if main.message == "non mergeable terms" {
        let written: Vec<&Location> = primary.iter().map(|p| &p.0).chain(labels.iter().map(|l| &l.0)).collect();
        let values: Vec<&Location> = main
            .labels
            .iter()
            .filter(|l| l.message == "cannot merge this expression" || l.message == "with this expression")
            .filter_map(|l| written.iter().copied().find(|w| w.start == l.range.start && w.end == l.range.end))
            .collect();
        if let Some(field) = values.iter().find_map(|v| field_before(v)) {
            let shown: Vec<String> = values.iter().map(|v| v.snippet().split_whitespace().collect::<Vec<_>>().join(" ")).filter(|v| v.len() <= 40).collect();
            message = match shown.as_slice() {
                [a, b] => format!("conflicting values for `{field}`: {a} and {b}"),
                _ => format!("conflicting values for `{field}`"),
            };
            help = Some(format!(
                "give `{field}` one value: a value you write yourself overrides a preset's (presets set their fields with priority -1), and two presets that disagree cannot both be merged"
            ));
            notes.clear();
        }
    }

    let mut diagnostic = Diagnostic::new(code, message);
    diagnostic.severity = Severity::Error;
    if let Some((loc, label, _, _)) = primary {
        diagnostic.location = Some(loc);
        if !label.is_empty() && galley_code(&label).is_none() {
            diagnostic.label = Some(match label.as_str() {
                "applied to this expression" | "evaluated to this expression" => "this value".to_owned(),
                _ => label,
            });
        }
    }
    // A missing field has no place of its own: the record is marked, so name the field to add.
    if code == Code::MissingField
        && help.is_none()
        && let Some(field) = diagnostic.message.strip_prefix("missing definition for `").and_then(|r| r.split('`').next())
    {
        help = Some(format!("add `{field} = ...` to this record; `galley lsp` shows what it takes"));
    }
    diagnostic.help = help.or_else(|| code.default_help().map(str::to_owned));
    diagnostic.notes = notes;
    diagnostic.related = labels
        .into_iter()
        .filter(|(_, message, _, _)| !message.is_empty())
        .map(|(location, message, _, _)| Related { location, message })
        .collect();
    vec![super::imported::explain(diagnostic, namer)]
}

/// The name of the field whose value starts at `value`, read back from the text before it
/// (`pids = 256`, `network | priority -1 = 'none`, `sandboxes.web.network = 'egress`).
fn field_before(value: &Location) -> Option<String> {
    let before = value.source[..value.start].trim_end().strip_suffix('=')?;
    let start = before.rfind(['{', ',', ';', '\n']).map_or(0, |i| i + 1);
    let name = before[start..].split('|').next()?.trim();
    let plain = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "_-.\"".contains(c));
    plain.then(|| name.to_owned())
}

/// Split `... [G021] port 1 is out of range` into (G021, `port 1 is out of range`). A code the
/// catalogue does not know is not galley's.
fn galley_code(text: &str) -> Option<(Code, String)> {
    let start = text.find("[G")?;
    let rest = &text[start + 1..];
    let end = rest.find(']')?;
    Code::parse(&rest[..end]).map(|code| (code, rest[end + 1..].trim().to_owned()))
}

fn classify(message: &str, default: Code) -> Code {
    // Nickel resolves imports while it typechecks, so a missing import arrives as a type error.
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("import of ") && lower.contains("failed") {
        Code::Import
    } else if message.contains("unexpected token") || message.contains("unexpected end of file") || message.contains("parse error") {
        Code::Syntax
    } else if message.contains("extra field") {
        Code::UnknownField
    } else if message.contains("missing definition") || message.contains("missing field") {
        Code::MissingField
    } else if message.contains("contract broken") || message.contains("contract") {
        Code::Contract
    } else {
        default
    }
}

/// One line, lower-case first letter, no trailing period.
fn tidy(message: &str) -> String {
    let joined = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(": ");
    let m = joined.trim().trim_end_matches('.');
    let mut chars = m.chars();
    match chars.next() {
        Some(first) if !m.starts_with("I/O") => first.to_lowercase().chain(chars).collect(),
        _ => m.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_lifted_from_contract_messages() {
        assert_eq!(
            galley_code("contract broken: [G021] port 0 is out of range"),
            Some((Code::InvalidPort, "port 0 is out of range".into()))
        );
        assert_eq!(galley_code("[G12] nope"), None);
        assert_eq!(galley_code("[G999] not galley's"), None);
        assert_eq!(galley_code("plain"), None);
    }

    #[test]
    fn a_conflicting_value_is_named_by_the_field_written_before_it() {
        let at = |src: &str, value: &str| {
            let start = src.find(value).unwrap();
            field_before(&Location::new("f".into(), std::sync::Arc::from(src), start, start + value.len()))
        };
        assert_eq!(at("{ a = 1, pids = 256 }", "256").as_deref(), Some("pids"));
        assert_eq!(at("{\n  network | priority -1 = 'none,\n}", "'none").as_deref(), Some("network"));
        assert_eq!(at("x & { sandboxes.web.network = 'egress }", "'egress").as_deref(), Some("sandboxes.web.network"));
        assert_eq!(at("[1, 2]", "2"), None);
    }

    #[test]
    fn a_missing_import_is_an_import_error_whatever_phase_reports_it() {
        assert_eq!(classify("Import of common.ncl failed: could not find import", Code::Type), Code::Import);
        assert_eq!(classify("incompatible types", Code::Type), Code::Type);
    }

    #[test]
    fn messages_are_lower_case_without_period() {
        assert_eq!(tidy("Missing definition for `name`."), "missing definition for `name`");
    }
}

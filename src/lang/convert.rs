//! The one converter from Nickel's errors to galley diagnostics, shared by `galley check` and the
//! language server. Spans keep their file and byte range; never format a Nickel error with `{:?}`.

use nickel_lang_core::error::{Error, IntoDiagnostics, LabelStyle};
use nickel_lang_core::files::Files;

use super::{Namer, file_info};
use crate::diagnostic::{Diagnostic, Location, Related, Severity};

pub const UNKNOWN_FIELD: &str = "G004";

/// Convert one Nickel error (which may render as several codespan diagnostics, one per call-stack
/// frame) into galley diagnostics; the first is the error itself.
pub(super) fn from_nickel(error: Error, mut files: Files, namer: &Namer) -> Vec<Diagnostic> {
    let default_code = match &error {
        Error::ParseErrors(_) => "G001",
        Error::TypecheckError(_) => "G002",
        Error::ImportError(_) => "G007",
        Error::ExportError(_) => "G008",
        _ => "G006",
    };
    let raw = error.into_diagnostics(&mut files);
    let Some(main) = raw.into_iter().next() else {
        return vec![Diagnostic::error(default_code, "configuration error")];
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
    let code = code.unwrap_or_else(|| classify(&message, default_code).to_owned());
    let mut message = tidy(&message);
    // A type contract names what it expected only in a label on the schema: say it in the message
    // (galley's own validators already say it).
    if let Some((loc, _, _, _)) = labels.iter().find(|l| l.1 == "expected type").filter(|_| !galley_message) {
        let expected = loc.snippet().split_whitespace().collect::<Vec<_>>().join(" ");
        if !expected.is_empty() && expected.len() <= 80 {
            message = format!("{message}: expected {expected}");
        }
    }

    let mut diagnostic = Diagnostic::error(&code, message);
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
    diagnostic.help = help.or_else(|| default_help(&code).map(str::to_owned));
    diagnostic.notes = notes;
    diagnostic.related = labels
        .into_iter()
        .filter(|(_, message, _, _)| !message.is_empty())
        .map(|(location, message, _, _)| Related { location, message })
        .collect();
    vec![diagnostic]
}

/// Split `... [G021] port 1 is out of range` into (`G021`, `port 1 is out of range`).
fn galley_code(text: &str) -> Option<(String, String)> {
    let start = text.find("[G")?;
    let rest = &text[start + 1..];
    let end = rest.find(']')?;
    let code = &rest[..end];
    let valid = code.len() == 4 && code[1..].chars().all(|c| c.is_ascii_digit());
    valid.then(|| (code.to_owned(), rest[end + 1..].trim().to_owned()))
}

fn classify(message: &str, default: &'static str) -> &'static str {
    if message.contains("unexpected token") || message.contains("unexpected end of file") || message.contains("parse error") {
        "G001"
    } else if message.contains("extra field") {
        UNKNOWN_FIELD
    } else if message.contains("missing definition") || message.contains("missing field") {
        "G005"
    } else if message.contains("contract broken") || message.contains("contract") {
        "G003"
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

fn default_help(code: &str) -> Option<&'static str> {
    Some(match code {
        "G001" => "fix the syntax at the marked place; galley.ncl is Nickel (https://nickel-lang.org)",
        "G002" => "make the value match its declared type",
        "G003" => "make the value match the field's contract; `galley lsp` shows each field's documentation",
        UNKNOWN_FIELD => "remove the field or fix its spelling",
        "G005" => "give the field a value",
        "G007" => "check the import path; galley's library is imported as \"galley/std.ncl\"",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_lifted_from_contract_messages() {
        assert_eq!(
            galley_code("contract broken: [G021] port 0 is out of range"),
            Some(("G021".into(), "port 0 is out of range".into()))
        );
        assert_eq!(galley_code("[G12] nope"), None);
        assert_eq!(galley_code("plain"), None);
    }

    #[test]
    fn messages_are_lower_case_without_period() {
        assert_eq!(tidy("Missing definition for `name`."), "missing definition for `name`");
    }
}

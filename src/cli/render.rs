//! Rendering diagnostics: miette on a terminal (stderr), JSON on stdout for `--format json`.
//!
//! A literal secret (G102) is never repeated into the output: the source lines miette shows are
//! given with every string inside a G102 span, and each other occurrence of its text in the
//! file, masked with `*` (same byte length, so every offset still points where it did). JSON
//! carries positions and messages, never source text.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use super::error::ExitStatus;
use super::printer::Printer;
use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::settings::Format;

/// Print every finding; the answer is "no" when any is an error. With `errors_only` (commands
/// other than `check`), warnings are not printed.
pub fn report(out: &Printer, diagnostics: &[Diagnostic], errors_only: bool) -> ExitStatus {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let shown: Vec<&Diagnostic> =
        diagnostics.iter().filter(|d| !errors_only || d.is_error()).collect();
    match out.format {
        Format::Json => {
            let out = JsonReport { diagnostics: shown.iter().map(|d| JsonDiagnostic::from(*d)).collect(), errors, warnings };
            println!("{}", serde_json::to_string_pretty(&out).expect("report serializes"));
        }
        Format::Text => {
            let masks = secret_masks(diagnostics);
            for d in &shown {
                if out.verbosity.quiet() && !d.is_error() {
                    continue;
                }
                eprint!("{}", render(d, out.color, &masks));
            }
            if errors > 0 || warnings > 0 {
                out.note(summary(errors, warnings));
            }
        }
    }
    ExitStatus::no_unless(errors == 0)
}

fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, w: &str| if n == 1 { format!("{n} {w}") } else { format!("{n} {w}s") };
    match (errors, warnings) {
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// The miette rendering of one diagnostic, with the literal secrets of `masks` masked.
fn render(d: &Diagnostic, color: bool, masks: &SecretMasks) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    handler
        .render_report(&mut out, &Miette::new(d, masks))
        .expect("rendering to a string cannot fail");
    out
}

/// Per file shown, the byte ranges of literal secrets (G102 spans) to mask.
type SecretMasks = Vec<(std::path::PathBuf, Vec<(usize, usize)>)>;

fn secret_masks(diagnostics: &[Diagnostic]) -> SecretMasks {
    let mut masks: SecretMasks = Vec::new();
    for l in diagnostics.iter().filter(|d| d.code == Code::LiteralSecret).filter_map(|d| d.location.as_ref()) {
        match masks.iter_mut().find(|(f, _)| *f == l.file) {
            Some((_, spans)) => spans.push((l.start, l.end)),
            None => masks.push((l.file.clone(), vec![(l.start, l.end)])),
        }
    }
    masks
}

/// `source` with the strings inside each of `spans` (the whole span when it holds no quote),
/// and every other occurrence of such a string of 4 bytes or more, replaced by `*` byte for byte.
fn mask_secrets(source: &str, spans: &[(usize, usize)]) -> String {
    let mut bytes = source.as_bytes().to_vec();
    let mut values: Vec<String> = Vec::new();
    for &(start, end) in spans {
        let (start, end) = (start.min(bytes.len()), end.min(bytes.len()));
        let text = &source.as_bytes()[start..end];
        let quotes: Vec<usize> = text.iter().enumerate().filter(|(_, b)| **b == b'"').map(|(i, _)| start + i).collect();
        if quotes.len() < 2 {
            bytes[start..end].iter_mut().filter(|b| !b.is_ascii_whitespace()).for_each(|b| *b = b'*');
            values.extend(std::str::from_utf8(text).ok().map(|t| t.trim().to_owned()));
            continue;
        }
        for pair in quotes.chunks_exact(2) {
            let (open, close) = (pair[0] + 1, pair[1]);
            values.extend(source.get(open..close).map(str::to_owned));
            bytes[open..close].iter_mut().for_each(|b| *b = b'*');
        }
    }
    for value in values.iter().filter(|v| v.len() >= 4) {
        for (at, _) in source.match_indices(value.as_str()) {
            bytes[at..at + value.len()].iter_mut().for_each(|b| *b = b'*');
        }
    }
    String::from_utf8(bytes).expect("only whole characters are replaced by ASCII")
}

struct Miette<'a>(&'a Diagnostic, Option<CharColumns>);

impl<'a> Miette<'a> {
    fn new(d: &'a Diagnostic, masks: &SecretMasks) -> Self {
        let source = d.location.as_ref().map(|l| {
            let shown = match masks.iter().find(|(f, _)| *f == l.file) {
                Some((_, spans)) => Arc::from(mask_secrets(&l.source, spans)),
                None => l.source.clone(),
            };
            // Columns are counted on the file as written: a mask replaces bytes, not characters.
            CharColumns { named: NamedSource::new(l.file.display().to_string(), shown), text: l.source.clone() }
        });
        Miette(d, source)
    }
}

/// A source whose `file:line:column` header counts columns in characters, as the JSON report
/// and `Location` do (miette counts bytes, which differ after non-ASCII text).
struct CharColumns {
    named: NamedSource<Arc<str>>,
    text: Arc<str>,
}

impl miette::SourceCode for CharColumns {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self.named.read_span(span, before, after)?;
        // Only the header reads a span without context lines; the snippet keeps miette's own
        // bookkeeping.
        if before != 0 || after != 0 {
            return Ok(contents);
        }
        let start = contents.span().offset().min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let column = self.text.get(line_start..start).map_or(contents.column(), |s| s.chars().count());
        Ok(Box::new(miette::MietteSpanContents::new_named(
            contents.name().unwrap_or_default().to_owned(),
            contents.data(),
            *contents.span(),
            contents.line(),
            column,
            contents.line_count(),
        )))
    }
}

impl fmt::Debug for Miette<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Display for Miette<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Miette<'_> {}

impl miette::Diagnostic for Miette<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.0.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.0.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut text = self.0.notes.join("\n");
        if let Some(h) = &self.0.help {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(h);
        }
        (!text.is_empty()).then(|| Box::new(text) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.1.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let loc = self.0.location.as_ref()?;
        let span = SourceSpan::new(loc.start.into(), loc.end - loc.start);
        let label = self.0.label.clone();
        Some(Box::new(std::iter::once(LabeledSpan::new_primary_with_span(label, span))))
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    diagnostics: Vec<JsonDiagnostic<'a>>,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
struct JsonPosition {
    line: usize,
    column: usize,
    offset: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: Option<String>,
    start: Option<JsonPosition>,
    end: Option<JsonPosition>,
    severity: Severity,
    code: &'a str,
    message: &'a str,
    help: Option<&'a str>,
}

impl<'a> From<&'a Diagnostic> for JsonDiagnostic<'a> {
    fn from(d: &'a Diagnostic) -> Self {
        let loc = d.location.as_ref();
        JsonDiagnostic {
            file: loc.map(|l| l.file.display().to_string()),
            start: loc.map(|l| JsonPosition { line: l.start_line, column: l.start_col, offset: l.start }),
            end: loc.map(|l| JsonPosition { line: l.end_line, column: l.end_col, offset: l.end }),
            severity: d.severity,
            code: d.code.as_str(),
            message: &d.message,
            help: d.help.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_a_secret_span_and_their_other_occurrences_are_masked_byte_for_byte() {
        let source = "a = \"ghp_0123456789\",\nb = { value = \"tok_x\u{e9}y12\" },\nc = \"ghp_0123456789\",\nd = 1234,\n";
        let a = source.find("\"ghp").unwrap();
        let b = source.find("{ value").unwrap();
        let d = source.find("1234").unwrap();
        let spans = [(a, a + 16), (b, source.find(" },").unwrap() + 2), (d, d + 4)];
        let masked = mask_secrets(source, &spans);
        assert_eq!(masked.len(), source.len(), "offsets keep pointing where they did");
        assert_eq!(masked, "a = \"**************\",\nb = { value = \"**********\" },\nc = \"**************\",\nd = ****,\n");
    }
}

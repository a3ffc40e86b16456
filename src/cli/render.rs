//! Rendering diagnostics: miette on a terminal (stderr), JSON on stdout for `--format json`.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use super::error::ExitStatus;
use super::printer::Printer;
use crate::diagnostic::{Diagnostic, Severity};
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
            for d in &shown {
                if out.verbosity.quiet() && !d.is_error() {
                    continue;
                }
                eprint!("{}", render(d, out.color));
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

/// The miette rendering of one diagnostic.
pub fn render(d: &Diagnostic, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    handler
        .render_report(&mut out, &Miette::new(d))
        .expect("rendering to a string cannot fail");
    out
}

struct Miette<'a>(&'a Diagnostic, Option<CharColumns>);

impl<'a> Miette<'a> {
    fn new(d: &'a Diagnostic) -> Self {
        let source = d.location.as_ref().map(|l| CharColumns {
            named: NamedSource::new(l.file.display().to_string(), l.source.clone()),
            text: l.source.clone(),
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

//! Findings about a configuration, independent of how they are shown.
//!
//! `lang` produces these from Nickel's own errors and from galley's lints; `cli` renders them with
//! miette or as JSON, `lsp` turns them into LSP diagnostics. Positions are byte ranges plus 1-based
//! line and column (columns count characters), computed once from the source text.

mod code;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use code::{CATALOGUE, Code, Entry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A place in a source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Path as shown to users: relative to the project for project files, `galley/...` for the
    /// embedded library.
    pub file: PathBuf,
    pub start: usize,
    pub end: usize,
    pub start_line: usize,
    pub start_col: usize,
    pub end_line: usize,
    pub end_col: usize,
    /// The text the offsets refer to.
    #[serde(skip)]
    pub source: Arc<str>,
}

impl Location {
    /// A location for `start..end` in `source`, clamped to the text and to char boundaries. This
    /// reads the text up to `end`; for many locations in one text, use [`Lines::location`].
    pub fn new(file: PathBuf, source: Arc<str>, start: usize, end: usize) -> Location {
        Lines::new(source).location(file, start, end)
    }

    pub fn snippet(&self) -> &str {
        &self.source[self.start..self.end]
    }
}

/// A source text with the offset where each of its lines starts, so a location in it costs a
/// search of that table and a count along one line, not a scan from the top of the text.
#[derive(Debug, Clone)]
pub struct Lines {
    source: Arc<str>,
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(source: Arc<str>) -> Lines {
        let starts = std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { source, starts }
    }

    pub fn source(&self) -> &Arc<str> {
        &self.source
    }

    /// A location for `start..end`, clamped to the text and to char boundaries.
    pub fn location(&self, file: PathBuf, start: usize, end: usize) -> Location {
        let source = &self.source;
        let clamp = |mut i: usize| {
            i = i.min(source.len());
            while !source.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let start = clamp(start);
        let end = clamp(end.max(start));
        let (start_line, start_col) = self.line_col(start);
        let (end_line, end_col) = self.line_col(end);
        Location { file, start, end, start_line, start_col, end_line, end_col, source: source.clone() }
    }

    /// 1-based line and character column of byte offset `at`.
    fn line_col(&self, at: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= at);
        let line_start = self.starts[line - 1];
        (line, self.source[line_start..at].chars().count() + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    pub location: Location,
    pub message: String,
}

/// One finding: a code such as `G021`, a one-line message, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    /// The label shown under the underlined span.
    pub label: Option<String>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A finding of `code`, with the severity the catalogue gives it.
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: None,
            label: None,
            help: None,
            notes: Vec::new(),
            related: Vec::new(),
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sort findings by file and position, errors before warnings at the same place.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        fn key(d: &Diagnostic) -> Option<(&PathBuf, usize, usize)> {
            d.location.as_ref().map(|l| (&l.file, l.start, l.end))
        }
        key(a).cmp(&key(b)).then(b.severity.cmp(&a.severity)).then(a.code.cmp(&b.code))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src: Arc<str> = Arc::from("ab\n\u{e9}x = 1\n");
        let loc = Location::new("f".into(), src, 5, 6);
        assert_eq!((loc.start_line, loc.start_col), (2, 2));
        assert_eq!(loc.snippet(), "x");
    }

    #[test]
    fn the_line_table_agrees_with_counting_from_the_top() {
        let src: Arc<str> = Arc::from("a\n\u{e9}b\n\n  c\nd");
        let lines = Lines::new(src.clone());
        for at in (0..=src.len()).filter(|&i| src.is_char_boundary(i)) {
            let before = &src[..at];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
            let loc = lines.location("f".into(), at, at);
            assert_eq!((loc.start_line, loc.start_col), (line, col), "at {at}");
        }
    }

    #[test]
    fn offsets_are_clamped_to_char_boundaries() {
        let src: Arc<str> = Arc::from("\u{e9}\u{e9}");
        let loc = Location::new("f".into(), src, 1, 99);
        assert_eq!((loc.start, loc.end), (0, 4));
    }
}

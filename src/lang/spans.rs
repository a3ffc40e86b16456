//! Where each field of an evaluated config was written.
//!
//! Nickel values keep the position of the expression they came from, and record fields keep the
//! position of their name. Walking the evaluated value once gives every field path
//! (`sandboxes.web.ports[0].host`) the span of its name and of its value, when those lie in the
//! user's files. Lints then point at the offending field, not at the whole record.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use nickel_lang_core::eval::value::{NickelValue, ValueContentRef};
use nickel_lang_core::files::{FileId, Files};
use nickel_lang_core::position::{PosTable, RawSpan, TermPos};

use super::{Namer, file_info};
use crate::diagnostic::{Lines, Location};

/// A byte range in one of the index's files. A [`Location`] (with its line and column) is made
/// only when a finding asks for one.
#[derive(Debug, Clone, Copy)]
struct Span {
    file: usize,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    name: Option<Span>,
    value: Option<Span>,
}

/// Field path -> spans of the field's name and value in the user's files.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    /// The user's files the spans lie in: the name users see, and the text with its line table.
    files: Vec<(PathBuf, Lines)>,
    entries: HashMap<String, Entry>,
    /// Child keys of each record path, in source order, including paths with no user span.
    children: BTreeMap<String, Vec<String>>,
}

impl SpanIndex {
    /// The span of the field's name, else of its value, else of the nearest enclosing field.
    pub fn locate(&self, path: &str) -> Option<Location> {
        self.walk_up(path, |e| e.name.or(e.value))
    }

    /// The span of the field's value, else of its name, else of the nearest enclosing field.
    pub fn locate_value(&self, path: &str) -> Option<Location> {
        self.walk_up(path, |e| e.value.or(e.name))
    }

    /// Whether the user wrote this field (its name or value lies in a user file).
    pub fn is_written(&self, path: &str) -> bool {
        self.entries.get(path).is_some_and(|e| e.name.is_some() || e.value.is_some())
    }

    /// Keys of the record at `path`.
    pub fn keys(&self, path: &str) -> &[String] {
        self.children.get(path).map_or(&[], Vec::as_slice)
    }

    /// All record paths, for schema walks.
    pub fn records(&self) -> impl Iterator<Item = &str> {
        self.children.keys().map(String::as_str)
    }

    fn walk_up(&self, path: &str, pick: impl Fn(&Entry) -> Option<Span>) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(span) = self.entries.get(path).and_then(&pick) {
                let (name, lines) = &self.files[span.file];
                return Some(lines.location(name.clone(), span.start, span.end));
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// `a.b[0].c` -> `a.b[0]` -> `a.b` -> `a` -> ``.
pub fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Append a record key to a path, quoting keys that are not plain identifiers.
pub fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if plain { key.to_owned() } else { format!("{key:?}") };
    if path.is_empty() { key } else { format!("{path}.{key}") }
}

pub(super) fn index(value: &NickelValue, table: &PosTable, files: &Files, namer: &Namer) -> SpanIndex {
    let mut walker = Walker { table, files, namer, seen: HashMap::new(), index: SpanIndex::default() };
    let root = Entry { name: None, value: walker.span(value.pos(table)) };
    walker.index.entries.insert(String::new(), root);
    walker.walk(value, String::new());
    walker.index
}

struct Walker<'a> {
    table: &'a PosTable,
    files: &'a Files,
    namer: &'a Namer,
    /// Nickel's file ids -> index in `index.files`, or `None` for a file that is not the user's.
    seen: HashMap<FileId, Option<usize>>,
    index: SpanIndex,
}

impl Walker<'_> {
    fn walk(&mut self, value: &NickelValue, path: String) {
        match value.content_ref() {
            ValueContentRef::Record(record) => {
                let mut keys = Vec::new();
                if let Some(record) = record.into_opt() {
                    for (ident, field) in &record.fields {
                        let key = ident.label().to_owned();
                        let sub = child(&path, &key);
                        let entry = Entry {
                            name: self.span(ident.pos),
                            value: field.value.as_ref().and_then(|v| self.span(v.pos(self.table))),
                        };
                        self.index.entries.insert(sub.clone(), entry);
                        if let Some(v) = &field.value {
                            self.walk(v, sub);
                        }
                        keys.push(key);
                    }
                }
                self.index.children.insert(path, keys);
            }
            ValueContentRef::Array(array) => {
                for (i, v) in array.iter().enumerate() {
                    let sub = format!("{path}[{i}]");
                    let entry = Entry { name: None, value: self.span(v.pos(self.table)) };
                    self.index.entries.insert(sub.clone(), entry);
                    self.walk(v, sub);
                }
            }
            _ => {}
        }
    }

    /// The span of `pos` when it lies in a user file.
    fn span(&mut self, pos: TermPos) -> Option<Span> {
        let span: RawSpan = pos.into_opt()?;
        let (files, namer, index) = (self.files, self.namer, &mut self.index);
        let file = *self.seen.entry(span.src_id).or_insert_with(|| {
            let (name, source, user) = file_info(files, span.src_id, namer);
            user.then(|| {
                index.files.push((name, Lines::new(source)));
                index.files.len() - 1
            })
        });
        Some(Span { file: file?, start: span.start.to_usize(), end: span.end.to_usize() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_walk_up_through_arrays_and_records() {
        assert_eq!(parent("sandboxes.web.ports[0].host"), "sandboxes.web.ports[0]");
        assert_eq!(parent("sandboxes.web.ports[0]"), "sandboxes.web.ports");
        assert_eq!(parent("name"), "");
        assert_eq!(child("env", "a.b"), "env.\"a.b\"");
        assert_eq!(child("", "images"), "images");
    }
}

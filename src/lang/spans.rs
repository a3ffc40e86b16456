//! Where each field of an evaluated config was written.
//!
//! Nickel values keep the position of the expression they came from, and record fields keep the
//! position of their name. Walking the evaluated value once gives every field path
//! (`sandboxes.web.ports[0].host`) the span of its name and of its value, when those lie in the
//! user's files. Lints then point at the offending field, not at the whole record.

use std::collections::BTreeMap;

use nickel_lang_core::eval::value::{NickelValue, ValueContentRef};
use nickel_lang_core::files::Files;
use nickel_lang_core::position::{PosTable, RawSpan, TermPos};

use super::{Namer, file_info};
use crate::diagnostic::Location;

#[derive(Debug, Clone, Default)]
struct Entry {
    name: Option<Location>,
    value: Option<Location>,
}

/// Field path -> spans of the field's name and value in the user's files.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    entries: BTreeMap<String, Entry>,
    /// Child keys of each record path, in source order, including paths with no user span.
    children: BTreeMap<String, Vec<String>>,
}

impl SpanIndex {
    /// The span of the field's name, else of its value, else of the nearest enclosing field.
    pub fn locate(&self, path: &str) -> Option<Location> {
        self.walk_up(path, |e| e.name.clone().or_else(|| e.value.clone()))
    }

    /// The span of the field's value, else of its name, else of the nearest enclosing field.
    pub fn locate_value(&self, path: &str) -> Option<Location> {
        self.walk_up(path, |e| e.value.clone().or_else(|| e.name.clone()))
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

    /// Every field path with the spans of its name and value, and the keys of every record:
    /// what [`SpanIndex::from_parts`] rebuilds the index from (the evaluator sends it across a
    /// process boundary).
    pub fn parts(&self) -> (impl Iterator<Item = (&str, Option<&Location>, Option<&Location>)>, &BTreeMap<String, Vec<String>>) {
        let entries = self.entries.iter().map(|(k, e)| (k.as_str(), e.name.as_ref(), e.value.as_ref()));
        (entries, &self.children)
    }

    pub fn from_parts(
        entries: impl IntoIterator<Item = (String, Option<Location>, Option<Location>)>,
        children: BTreeMap<String, Vec<String>>,
    ) -> SpanIndex {
        let entries = entries.into_iter().map(|(k, name, value)| (k, Entry { name, value })).collect();
        SpanIndex { entries, children }
    }

    fn walk_up(&self, path: &str, pick: impl Fn(&Entry) -> Option<Location>) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(loc) = self.entries.get(path).and_then(&pick) {
                return Some(loc);
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
    let mut index = SpanIndex::default();
    let root = Entry { name: None, value: location(value.pos(table), files, namer) };
    index.entries.insert(String::new(), root);
    walk(value, String::new(), table, files, namer, &mut index);
    index
}

fn walk(value: &NickelValue, path: String, table: &PosTable, files: &Files, namer: &Namer, index: &mut SpanIndex) {
    match value.content_ref() {
        ValueContentRef::Record(record) => {
            let mut keys = Vec::new();
            if let Some(record) = record.into_opt() {
                for (ident, field) in &record.fields {
                    let key = ident.label().to_owned();
                    let sub = child(&path, &key);
                    let entry = Entry {
                        name: location(ident.pos, files, namer),
                        value: field.value.as_ref().and_then(|v| location(v.pos(table), files, namer)),
                    };
                    index.entries.insert(sub.clone(), entry);
                    if let Some(v) = &field.value {
                        walk(v, sub, table, files, namer, index);
                    }
                    keys.push(key);
                }
            }
            index.children.insert(path, keys);
        }
        ValueContentRef::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                let sub = format!("{path}[{i}]");
                let entry = Entry { name: None, value: location(v.pos(table), files, namer) };
                index.entries.insert(sub.clone(), entry);
                walk(v, sub, table, files, namer, index);
            }
        }
        _ => {}
    }
}

fn location(pos: TermPos, files: &Files, namer: &Namer) -> Option<Location> {
    let span: RawSpan = pos.into_opt()?;
    let (name, source, user) = file_info(files, span.src_id, namer);
    user.then(|| Location::new(name, source, span.start.to_usize(), span.end.to_usize()))
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

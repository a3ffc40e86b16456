//! Hover and completion, from the schema: the record path around the cursor ([`super::scan`])
//! gives the schema record ([`crate::schema_fields::kind_at`]); its fields' docs and types come
//! from `galley/schema.ncl` through [`crate::lang::docs`], read once and cached.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, Documentation, Hover, HoverContents,
    MarkupContent, MarkupKind, Position,
};

use super::scan::{self, Place};
use super::text::{offset_of, range_of, word_at};
use crate::lang::docs::{self, FieldDoc, SchemaDocs};
use crate::schema_fields::{self, Kind};

/// What the schema says, loaded once per server.
#[derive(Debug, Default)]
pub struct Knowledge {
    pub docs: SchemaDocs,
    pub capabilities: Vec<String>,
}

impl Knowledge {
    pub fn load(lib_root: &Path) -> Knowledge {
        let docs = docs::schema_docs(lib_root).unwrap_or_else(|e| {
            eprintln!("galley lsp: schema documentation unavailable: {e}");
            SchemaDocs::new()
        });
        let capabilities = docs::capabilities(lib_root).unwrap_or_else(|e| {
            eprintln!("galley lsp: capability list unavailable: {e}");
            Vec::new()
        });
        Knowledge { docs, capabilities }
    }

    fn field(&self, kind: Kind, field: &str) -> Option<&FieldDoc> {
        self.docs.get(kind.contract())?.get(field)
    }
}

/// A lazily loaded, shared [`Knowledge`].
#[derive(Debug, Clone, Default)]
pub struct Cache(Arc<OnceLock<Knowledge>>);

impl Cache {
    pub fn get(&self, lib_root: &Path) -> &Knowledge {
        self.0.get_or_init(|| Knowledge::load(lib_root))
    }
}

/// The documentation of the field name under the cursor.
pub fn hover(knowledge: &Knowledge, text: &str, pos: Position) -> Option<Hover> {
    let at = offset_of(text, pos);
    let (start, end, word) = word_at(text, at)?;
    let Place::FieldName(record) = scan::place_at(text, start) else { return None };
    let segments: Vec<&str> = record.iter().map(String::as_str).collect();
    let kind = schema_fields::kind_at(&segments)?;
    let doc = knowledge.field(kind, word)?;
    let omit = if doc.optional { " (may be omitted)" } else { " (required)" };
    let value = format!("**{}.{word}** : `{}`{omit}\n\n{}", kind.contract(), doc.typ, doc.doc);
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value }),
        range: Some(range_of(text, start, end)),
    })
}

/// Field names valid at the cursor, or the allowed values of the field whose value it is in.
pub fn complete(knowledge: &Knowledge, text: &str, pos: Position) -> CompletionResponse {
    let at = offset_of(text, pos);
    let start = word_at(text, at).map_or(at, |(s, _, _)| s.min(at));
    let items = match scan::place_at(text, start) {
        Place::FieldName(record) => field_items(knowledge, &record),
        Place::Value { field, in_array } => {
            let quoted = text[..start].ends_with('"');
            value_items(knowledge, &field, in_array, quoted)
        }
        Place::Unknown => Vec::new(),
    };
    CompletionResponse::Array(items)
}

fn field_items(knowledge: &Knowledge, record: &[String]) -> Vec<CompletionItem> {
    let segments: Vec<&str> = record.iter().map(String::as_str).collect();
    let Some(kind) = schema_fields::kind_at(&segments) else { return Vec::new() };
    kind.fields()
        .iter()
        .map(|name| {
            let doc = knowledge.field(kind, name);
            CompletionItem {
                label: (*name).to_owned(),
                kind: Some(CompletionItemKind::FIELD),
                detail: doc.map(|d| d.typ.clone()),
                documentation: doc.map(|d| markdown(d.doc.clone())),
                ..CompletionItem::default()
            }
        })
        .collect()
}

fn value_items(knowledge: &Knowledge, field: &[String], in_array: bool, quoted: bool) -> Vec<CompletionItem> {
    let Some((name, parent)) = field.split_last() else { return Vec::new() };
    let segments: Vec<&str> = parent.iter().map(String::as_str).collect();
    let Some(kind) = schema_fields::kind_at(&segments) else { return Vec::new() };
    if kind == Kind::Sandbox && name == "capabilities" && in_array {
        return knowledge
            .capabilities
            .iter()
            .map(|c| CompletionItem {
                label: c.clone(),
                kind: Some(CompletionItemKind::CONSTANT),
                insert_text: (!quoted).then(|| format!("\"{c}\"")),
                ..CompletionItem::default()
            })
            .collect();
    }
    let doc = knowledge.field(kind, name);
    schema_fields::enum_values(kind, name)
        .iter()
        .map(|v| CompletionItem {
            label: (*v).to_owned(),
            kind: Some(CompletionItemKind::ENUM_MEMBER),
            detail: doc.map(|d| d.typ.clone()),
            documentation: doc.map(|d| markdown(d.doc.clone())),
            ..CompletionItem::default()
        })
        .collect()
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> &'static Knowledge {
        static K: OnceLock<Knowledge> = OnceLock::new();
        K.get_or_init(|| Knowledge::load(tempfile::tempdir().unwrap().keep().as_path()))
    }

    fn at(text: &str) -> (String, Position) {
        let i = text.find('^').unwrap();
        let clean = text.replace('^', "");
        let pos = super::super::text::position_of(&clean, i);
        (clean, pos)
    }

    fn labels(r: CompletionResponse) -> Vec<String> {
        match r {
            CompletionResponse::Array(items) => items.into_iter().map(|i| i.label).collect(),
            CompletionResponse::List(l) => l.items.into_iter().map(|i| i.label).collect(),
        }
    }

    #[test]
    fn hover_shows_doc_and_type() {
        let (text, pos) = at("{\n  sandboxes.web = {\n    net^work = 'none,\n  },\n}");
        let h = hover(knowledge(), &text, pos).unwrap();
        let HoverContents::Markup(m) = h.contents else { panic!() };
        assert!(m.value.contains("'isolated") && m.value.contains("loopback only"), "{}", m.value);
        let (text, pos) = at("{ sandboxes.w^eb = {} }");
        assert!(hover(knowledge(), &text, pos).is_none());
    }

    #[test]
    fn completion_offers_fields_and_values() {
        let (text, pos) = at("{ sandboxes.web = { image = \"x\", re^ } }");
        let got = labels(complete(knowledge(), &text, pos));
        assert!(got.contains(&"read_only".to_owned()) && got.contains(&"resources".to_owned()), "{got:?}");
        let (text, pos) = at("{ sandboxes.web = { resources.^ } }");
        assert_eq!(labels(complete(knowledge(), &text, pos)), Kind::Resources.fields());
        let (text, pos) = at("{ sandboxes.web = { seccomp = '^ } }");
        assert_eq!(labels(complete(knowledge(), &text, pos)), ["'default", "'strict", "'unconfined"]);
        let (text, pos) = at("{ sandboxes.web = { capabilities = [\"NET_^\"] } }");
        assert!(labels(complete(knowledge(), &text, pos)).contains(&"NET_RAW".to_owned()));
    }
}
